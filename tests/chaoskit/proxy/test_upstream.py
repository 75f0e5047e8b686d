"""The upstream client against real loopback servers: keep-alive reuse and its limits, what
ends a connection, failures named as Envoy names them, and requests that are never sent."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from chaoskit.proxy import http1_pool
from chaoskit.proxy.upstream import UpstreamClient, UpstreamFailure, UpstreamResponse, request_head

pytestmark = pytest.mark.integration

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Upstream:
    """An asyncio server answering each request with ``reply(request_head)``."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.connections = 0
        self.closed_by_peer = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    def drop_idle_connections(self) -> None:
        """End every connection from this side, as a server does with idle keep-alives."""
        for writer in self._writers:
            writer.close()

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                answer = self.reply(head)
                if answer is None:  # stall: the client must give up
                    await reader.read()
                    self.closed_by_peer += 1
                    return
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_peer += 1
        finally:
            writer.close()


def run(main: Callable[[UpstreamClient], Awaitable[None]]) -> None:
    async def wrapper() -> None:
        client = UpstreamClient()
        await client.start()
        try:
            await main(client)
        finally:
            await client.close()

    asyncio.run(wrapper())


async def get(client: UpstreamClient, port: int, path: str = "/", method: str = "GET",
              body: bytes = b"") -> UpstreamResponse:  # fmt: skip
    headers = [("host", f"svc:{port}"), ("X-Case", "Kept")]
    return await client.send(method, "http", "127.0.0.1", port, path, headers, body, 1.0)


def test_keep_alive_connections_are_reused_one_exchange_at_a_time() -> None:
    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: OK) as up:
            for _ in range(3):
                r = await get(client, up.port)
                assert (r.status, r.reason, r.body) == (200, "OK", b"ok")
            assert up.connections == 1 and client.idle_connections == 1
            await asyncio.gather(*(get(client, up.port) for _ in range(3)))
            assert up.connections == 3 and client.idle_connections == 3

    run(main)


def test_the_request_is_sent_as_given_with_its_length() -> None:
    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: OK) as up:
            await get(client, up.port, "/a?b=c#frag", "POST", b"12345")
            await get(client, up.port, "/empty", "PUT")
            await get(client, up.port, "/plain")
        post, put, plain = up.requests
        assert post == (
            b"POST /a?b=c HTTP/1.1\r\nhost: svc:%d\r\nX-Case: Kept\r\ncontent-length: 5\r\n\r\n"
            % up.port
        )
        assert b"content-length: 0\r\n" in put
        assert b"content-length" not in plain

    run(main)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ],
)
def test_a_connection_the_upstream_will_close_is_not_reused(answer: bytes) -> None:
    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: answer) as up:
            for _ in range(2):
                assert (await get(client, up.port)).body == b"ok"
            assert up.connections == 2 and client.idle_connections == 0

    run(main)


def test_an_idle_connection_the_upstream_closed_is_not_used_again() -> None:
    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: OK) as up:
            await get(client, up.port)
            up.drop_idle_connections()
            await asyncio.sleep(0.05)  # the FIN arrives while the connection is idle
            assert (await get(client, up.port)).status == 200  # a new connection, no error
            assert up.connections == 2

    run(main)


def test_an_exchange_cut_off_closes_its_connection() -> None:
    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda h: None if b"/stall" in h else OK) as up:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await get(client, up.port, "/stall")
            for _ in range(200):  # the upstream sees the close
                if up.closed_by_peer:
                    break
                await asyncio.sleep(0.01)
            assert up.closed_by_peer == 1 and client.idle_connections == 0
            assert (await get(client, up.port)).status == 200

    run(main)


def test_failures_are_named_as_envoy_names_them() -> None:
    async def main(client: UpstreamClient) -> None:
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        with pytest.raises(UpstreamFailure) as refused:
            await get(client, dead)
        assert (refused.value.flag, refused.value.transport) == ("UF", "delayed connect error: 111")
        async with Upstream(lambda h: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
                            b"" if b"/short" in h else b"garbage\r\n\r\n") as up:  # fmt: skip
            with pytest.raises(UpstreamFailure) as malformed:
                await get(client, up.port, "/bad")
            assert (malformed.value.kind, malformed.value.flag) == ("protocol error", "UPE")
        assert client.idle_connections == 0

    run(main)


def test_a_body_cut_short_by_the_close_is_a_connection_termination() -> None:
    async def main(client: UpstreamClient) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort"
        async with Upstream(lambda _: answer) as up:
            with pytest.raises(UpstreamFailure) as cut:
                await get(client, up.port)
        assert (cut.value.kind, cut.value.flag) == ("connection termination", "UC")

    run(main)


def test_a_request_that_asks_to_close_its_connection_does_not_reuse_it() -> None:
    # maxRequestsPerConnection: 1 sends `connection: close`; a server need not echo it back
    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: OK) as up:
            for _ in range(2):
                headers = [("host", "svc"), ("Connection", "Close")]
                await client.send("GET", "http", "127.0.0.1", up.port, "/", headers, b"", 1.0)
            assert up.connections == 2 and client.idle_connections == 0

    run(main)


def test_idle_connections_are_bounded_and_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1_pool, "MAX_IDLE_PER_ENDPOINT", 2)
    monkeypatch.setattr(http1_pool, "IDLE_TIMEOUT", 0.3)

    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: OK) as up:
            await asyncio.gather(*(get(client, up.port) for _ in range(5)))
            assert up.connections == 5 and client.idle_connections == 2
            for _ in range(300):
                if client.idle_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert client.idle_connections == 0

    run(main)


def test_the_pool_knows_its_own_sockets() -> None:
    """Loop detection recognises a connection that arrives from one of these sockets."""

    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: OK) as up:
            await get(client, up.port)
            client.own_sockets._settle()  # read the addresses of connected sockets
            # the server's view of the connection: its peer is our socket's local address
            ((local, remote),) = client.own_sockets._by_pair
            assert remote == ("127.0.0.1", up.port)
            assert client.own_sockets.opened(local, ("127.0.0.1", up.port))
            assert not client.own_sockets.opened((local[0], local[1] + 1), remote)

    run(main)


@pytest.mark.parametrize(
    ("method", "address", "path", "headers"),
    [
        ("GET / HTTP/1.1\r\nX:", "127.0.0.1", "/", []),
        ("GET", "127.0.0.1#.x.test", "/", []),
        ("GET", "127.0.0.1/secret?.x.test", "/", []),
        ("GET", "user@127.0.0.1", "/", []),
        ("GET", "127.0.0.1", "http://elsewhere/", []),
        ("GET", "127.0.0.1", "/a b", []),
        ("GET", "127.0.0.1", "/\r\nX-Injected: 1", []),
        ("GET", "127.0.0.1", "/", [("X-A", "v\r\nX-Injected: 1")]),
        ("GET", "127.0.0.1", "/", [("Bad Name", "v")]),
    ],
)
def test_a_request_that_is_not_well_formed_is_never_sent(
    method: str, address: str, path: str, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValueError):
        request_head(method, address, 80, path, headers, 0)

    async def main(client: UpstreamClient) -> None:
        with pytest.raises(UpstreamFailure) as e:
            await client.send(method, "http", address, 80, path, headers, b"", 1.0)
        assert e.value.flag == "UPE" and client.idle_connections == 0

    run(main)


def test_hosts_and_ip_literals_are_addresses() -> None:
    for address in ("ratings", "ratings.default.svc.cluster.local", "127.0.0.1", "[::1]", "::1"):
        head, _ = request_head("GET", address, 80, "/", [], 0)
        assert head.startswith(b"GET / HTTP/1.1\r\n")


def test_a_name_is_resolved_and_its_addresses_tried_in_turn() -> None:
    # `localhost` may resolve to ::1 first, where nothing listens: the next address is tried
    async def main(client: UpstreamClient) -> None:
        async with Upstream(lambda _: OK) as up:
            headers = [("host", "svc")]
            r = await client.send("GET", "http", "localhost", up.port, "/", headers, b"", 1.0)
            assert r.status == 200 and up.connections == 1

    run(main)
