"""A body that streams from a real loopback upstream (chaoskit/proxy/upstream_body.py and the
streaming mode of http1_connection.py): handed over with its head, read as it arrives, its
connection reused only when it was read to the end, and bounded while nobody reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from chaoskit.proxy.http1_connection import STREAM_HIGH_WATER
from chaoskit.proxy.upstream import UpstreamClient, UpstreamResponse
from chaoskit.proxy.upstream_body import UpstreamBody, UpstreamBodyError
from tests.chaoskit.proxy.test_upstream import run

pytestmark = pytest.mark.integration

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Scripted:
    """An upstream that writes what the test tells it to, when it tells it to."""

    def __init__(self) -> None:
        self.port = 0
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()
        self.closed = asyncio.Event()
        self.requests = 0

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.connected.set()
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()

    async def write(self, data: bytes) -> None:
        await self.connected.wait()
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()


async def send(client: UpstreamClient, port: int) -> UpstreamResponse:
    headers = [("host", "svc")]
    return await client.send(
        "GET", "http", "127.0.0.1", port, "/", headers, b"", 1.0, streamable=True
    )


def streamed(main: Callable[[UpstreamClient, Scripted], Awaitable[None]]) -> None:
    async def with_upstream(client: UpstreamClient) -> None:
        async with Scripted() as up:
            await main(client, up)

    run(with_upstream)


def test_a_body_still_arriving_comes_with_the_head_and_then_piece_by_piece() -> None:
    async def main(client: UpstreamClient, up: Scripted) -> None:
        sending = asyncio.ensure_future(send(client, up.port))
        await up.write(HEAD + chunk(b"first"))
        resp = await sending
        assert resp.status == 200 and resp.body == b"" and isinstance(resp.rest, UpstreamBody)
        assert ("Transfer-Encoding", "chunked") not in resp.headers  # hop-by-hop
        assert await resp.rest.read() == b"first"
        await up.write(chunk(b"second") + b"0\r\n\r\n")
        assert await resp.rest.read() == b"second"
        assert await resp.rest.read() == b""
        assert resp.rest.ended and client.idle_connections == 1  # read through: reused

    streamed(main)


def test_a_body_that_came_whole_with_its_head_is_not_streamed() -> None:
    async def main(client: UpstreamClient, up: Scripted) -> None:
        sending = asyncio.ensure_future(send(client, up.port))
        await up.write(HEAD + chunk(b"all") + b"0\r\n\r\n")
        resp = await sending
        assert (resp.body, resp.rest) == (b"all", None)

    streamed(main)


def test_a_body_closed_early_closes_its_connection_and_runs_its_end_callbacks() -> None:
    async def main(client: UpstreamClient, up: Scripted) -> None:
        sending = asyncio.ensure_future(send(client, up.port))
        await up.write(HEAD + chunk(b"x"))
        resp = await sending
        assert resp.rest is not None
        ended: list[str] = []
        resp.rest.on_end.append(lambda: ended.append("slot"))
        resp.rest.close()
        resp.rest.close()  # idempotent
        assert ended == ["slot"] and client.idle_connections == 0
        await asyncio.wait_for(up.closed.wait(), 5)

    streamed(main)


def test_an_upstream_that_breaks_the_body_off_is_a_connection_termination() -> None:
    async def main(client: UpstreamClient, up: Scripted) -> None:
        sending = asyncio.ensure_future(send(client, up.port))
        await up.write(HEAD + chunk(b"x"))
        resp = await sending
        assert isinstance(resp.rest, UpstreamBody) and await resp.rest.read() == b"x"
        assert up.writer is not None
        up.writer.close()
        with pytest.raises(UpstreamBodyError) as cut:
            await resp.rest.read()
        assert (cut.value.reason, cut.value.flag) == ("connection termination", "UC")
        assert resp.rest.ended

    streamed(main)


def test_broken_chunk_framing_mid_body_is_a_protocol_error() -> None:
    async def main(client: UpstreamClient, up: Scripted) -> None:
        sending = asyncio.ensure_future(send(client, up.port))
        await up.write(HEAD + chunk(b"x"))
        resp = await sending
        assert resp.rest is not None and await resp.rest.read() == b"x"
        await up.write(b"zz\r\n")
        with pytest.raises(UpstreamBodyError) as cut:
            await resp.rest.read()
        assert cut.value.flag == "UPE"

    streamed(main)


def test_a_body_nobody_reads_stops_being_read_from_the_socket() -> None:
    async def main(client: UpstreamClient, up: Scripted) -> None:
        async with asyncio.timeout(30):  # a stuck read fails here, not in pytest's timeout
            sending = asyncio.ensure_future(send(client, up.port))
            await up.write(HEAD + chunk(b"x"))
            resp = await sending
            assert isinstance(resp.rest, UpstreamBody)
            conn = resp.rest._conn
            assert conn is not None and up.writer is not None
            piece = chunk(b"y" * 65536)
            for _ in range(64):  # 4 MiB offered; the proxy side must stop taking it
                up.writer.write(piece)
            for _ in range(400):  # bounded: until the client side stops reading
                if conn._reading_paused:
                    break
                await asyncio.sleep(0.01)
            assert conn._reading_paused
            assert conn._queued <= STREAM_HIGH_WATER + 256 * 1024  # + at most one read
            total = 0
            while total < 64 * 65536:  # reading it resumes the socket
                total += len(await resp.rest.read())
            resp.rest.close()

    streamed(main)
