"""The HTTP/2 pool against real servers on 127.0.0.1: one connection per endpoint until the
peer's concurrency limit says otherwise, h2c and TLS with ALPN, connect failures named as
Envoy names them, idle connections closed, sockets known for loop detection — and a unary call
by hand to a real gRPC server when grpcio is installed."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from chaoskit.proxy import http2_pool
from chaoskit.proxy.http2_pool import Http2Pool
from chaoskit.proxy.upstream import UpstreamFailure
from chaoskit.testing.http2_upstream import Http2Upstream, grpc_message
from chaoskit.testing.upstream import free_port
from tests.chaoskit.proxy.test_http2_connection import fetch, open_stream, run

pytestmark = pytest.mark.integration


def test_a_burst_of_streams_opens_one_connection() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            results = await asyncio.gather(*(fetch(pool, up, "/status/200") for _ in range(20)))
            assert {r[0] for r in results} == {200}
            assert up.connections == 1 and pool.connections == 1

    run(main)


def test_the_peers_max_concurrent_streams_opens_more_connections() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream(max_concurrent_streams=2) as up:
            results = await asyncio.gather(*(fetch(pool, up, "/delay/200") for _ in range(5)))
            assert {r[0] for r in results} == {200}
            assert up.connections == 3 and up.peak_streams == 2

    run(main)


def test_past_the_connection_bound_streams_wait_for_a_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http2_pool, "MAX_CONNECTIONS_PER_ENDPOINT", 1)

    async def main(pool: Http2Pool) -> None:
        with Http2Upstream(max_concurrent_streams=2) as up:
            results = await asyncio.gather(*(fetch(pool, up, "/delay/100") for _ in range(5)))
            assert {r[0] for r in results} == {200}
            assert up.connections == 1 and up.peak_streams == 2 and len(up.requests) == 5

    run(main)


def test_tls_with_alpn_h2() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream("secure", tls=True) as up:
            status, _, body, stream = await fetch(pool, up, "/json")
            assert status == 200 and b'"upstream": "secure"' in body
            transport = stream.connection.transport
            assert transport is not None
            assert transport.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"

    run(main)


def test_a_tls_server_that_does_not_select_h2_is_a_connection_failure() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream(tls=True, alpn=("http/1.1",)) as up, pytest.raises(UpstreamFailure) as e:
            await open_stream(pool, up)
        assert (e.value.kind, e.value.flag) == ("connection failure", "UF")
        assert "did not select HTTP/2 by ALPN (offered h2, it chose none)" in (e.value.detail or "")
        assert pool.connections == 0

    run(main)


def test_a_refused_connection_is_a_connection_failure() -> None:
    async def main(pool: Http2Pool) -> None:
        with pytest.raises(UpstreamFailure) as e:
            await pool.open_stream(("http", "127.0.0.1", free_port()), 1.0)
        assert (e.value.kind, e.value.flag) == ("connection failure", "UF")
        assert e.value.transport == "delayed connect error: 111"

    run(main)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never says a word (no HTTP/2 SETTINGS)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    listener.close()


def test_no_settings_within_the_connect_timeout_is_a_connect_timeout(silent_port: int) -> None:
    async def main(pool: Http2Pool) -> None:
        with pytest.raises(UpstreamFailure) as e:
            await pool.open_stream(("http", "127.0.0.1", silent_port), 0.3)
        assert (e.value.flag, e.value.transport) == ("UF", "connect timeout")
        assert pool.connections == 0

    run(main)


def test_a_server_that_says_goaway_at_once_fails_the_stream_without_reconnecting() -> None:
    """A server draining (SETTINGS, then GOAWAY on every new connection) would have the pool
    reconnect in a loop until a timeout: the streams waiting for the connection fail with it,
    refused (retriable), as in Envoy's pool."""
    import h2.config
    import h2.connection

    async def main(pool: Http2Pool) -> None:
        connects = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connects
            connects += 1
            server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            server.initiate_connection()
            server.close_connection(last_stream_id=0)
            writer.write(server.data_to_send())
            await reader.read()  # until the client hangs up
            writer.close()

        listener = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            async with asyncio.timeout(5):
                with pytest.raises(UpstreamFailure) as e:
                    await pool.open_stream(("http", "127.0.0.1", port), 1.0)
        finally:
            listener.close()
        assert (e.value.kind, e.value.flag) == ("remote refused stream reset", "UR")
        assert e.value.detail == "GOAWAY NO_ERROR (0x0), last stream 0 before any stream"
        assert connects == 1

    run(main)


def test_idle_connections_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http2_pool, "IDLE_TIMEOUT", 0.3)

    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            assert (await fetch(pool, up, "/status/200"))[0] == 200
            assert pool.connections == 1
            for _ in range(300):
                if pool.connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert pool.connections == 0

    run(main)


def test_the_pool_knows_its_own_sockets() -> None:
    """Loop detection recognises a connection that arrives from one of these sockets."""
    from chaoskit.proxy.own_sockets import OwnSockets

    async def main() -> None:
        own = OwnSockets()
        pool = Http2Pool(own)
        try:
            with Http2Upstream() as up:
                _, _, _, stream = await fetch(pool, up, "/status/200")
                transport = stream.connection.transport
                assert transport is not None
                local = transport.get_extra_info("sockname")
                assert own.opened(local, ("127.0.0.1", up.port))
        finally:
            await pool.close()

    asyncio.run(main())


def test_a_unary_call_to_a_real_grpc_server() -> None:
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    def say(request: bytes, context: object) -> bytes:
        return b"echo:" + request

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    async def main(pool: Http2Pool) -> None:
        stream = await pool.open_stream(("http", "127.0.0.1", port), 2.0)
        async with stream:
            headers = [("content-type", "application/grpc"), ("te", "trailers")]
            await stream.send_headers(
                "POST", "http", f"127.0.0.1:{port}", "/test.Echo/Say", headers, False
            )
            await stream.send_data(grpc_message(b"hi"), end_stream=True)
            status, response_headers = await stream.response_headers()
            body = bytearray()
            while chunk := await stream.read():
                body += chunk
        assert status == 200 and ("content-type", "application/grpc") in response_headers
        assert body == grpc_message(b"echo:hi")
        assert stream.trailers is not None and ("grpc-status", "0") in stream.trailers

    try:
        run(main)
    finally:
        server.stop(None)
