"""The HTTP/2 connection against a real HTTP/2 server on 127.0.0.1: streams multiplexed on one
connection, flow control both ways, trailers, resets both ways, GOAWAY, header limits, and
failures named as Envoy names them (``codec_impl.cc``'s ``onStreamClose``, ``router.cc``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence

import pytest

from chaoskit.proxy.http2_connection import STREAM_WINDOW
from chaoskit.proxy.http2_errors import PROTOCOL, REFUSED, REMOTE_RESET, TERMINATION
from chaoskit.proxy.http2_headers import Headers
from chaoskit.proxy.http2_pool import Http2Pool
from chaoskit.proxy.http2_stream import Http2Stream
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.proxy.upstream import UpstreamFailure
from chaoskit.testing import Upstream
from chaoskit.testing.http2_upstream import Http2Upstream, grpc_message, pattern

pytestmark = pytest.mark.integration


def run(main: Callable[[Http2Pool], Awaitable[None]]) -> None:
    async def wrapper() -> None:
        pool = Http2Pool(OwnSockets())
        pool.start()
        try:
            await main(pool)
        finally:
            await pool.close()

    asyncio.run(wrapper())


async def open_stream(pool: Http2Pool, up: Http2Upstream, timeout: float = 2.0) -> Http2Stream:
    return await pool.open_stream((up.scheme, "127.0.0.1", up.port), timeout)


async def fetch(
    pool: Http2Pool, up: Http2Upstream, path: str, method: str = "GET", body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
) -> tuple[int, Headers, bytes, Http2Stream]:  # fmt: skip
    """One whole exchange: status, headers, body, and the stream (for its trailers)."""
    stream = await open_stream(pool, up)
    async with stream:
        await stream.send_headers(method, up.scheme, up.address, path, headers, not body)
        if body:
            await stream.send_data(body, end_stream=True)
        status, response_headers = await stream.response_headers()
        data = bytearray()
        while chunk := await stream.read():
            data += chunk
    return status, response_headers, bytes(data), stream


@pytest.fixture
def up() -> Iterator[Http2Upstream]:
    with Http2Upstream("h2") as server:
        yield server


async def settle(read: Callable[[], int]) -> int:
    """Wait until ``read()`` stops changing (the sender is blocked), then return it."""
    last = -1
    for _ in range(200):
        await asyncio.sleep(0.05)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError("still changing after 10 s")


def test_concurrent_streams_share_one_connection(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        results = await asyncio.gather(*(fetch(pool, up, f"/delay/200?n={i}") for i in range(10)))
        assert [r[0] for r in results] == [200] * 10
        assert up.connections == 1 and up.peak_streams == 10 and pool.connections == 1
        # the streams ended: their slots are free again, on the same connection
        status, _, body, _ = await fetch(pool, up, "/json", headers=[("X-Case", "Kept")])
        assert status == 200 and b'"x-case": "Kept"' in body and up.connections == 1

    run(main)


def test_a_1mb_body_goes_both_ways_within_the_flow_control_windows(up: Http2Upstream) -> None:
    # the server's windows are HTTP/2's default 64 KiB: sending more before its WINDOW_UPDATEs
    # would be a flow-control error that ends the connection
    body = pattern(1024 * 1024)

    async def main(pool: Http2Pool) -> None:
        status, _, echoed, _ = await fetch(pool, up, "/echo", "POST", body)
        assert status == 200 and echoed == body
        assert up.requests[-1].body == body

    run(main)


def test_a_body_larger_than_every_window_streams_both_ways_at_once(up: Http2Upstream) -> None:
    # what a gRPC bidirectional stream does: sending and reading together, neither side
    # buffering the whole body, so 4 stream windows pass through without a deadlock
    body = pattern(4 * STREAM_WINDOW)

    async def main(pool: Http2Pool) -> None:
        stream = await open_stream(pool, up)
        async with stream:
            await stream.send_headers("POST", "http", up.address, "/echo", [], end_stream=False)

            async def send() -> None:
                for start in range(0, len(body), 100_000):
                    await stream.send_data(body[start : start + 100_000], end_stream=False)
                await stream.send_data(b"", end_stream=True)

            sender = asyncio.create_task(send())
            assert (await stream.response_headers())[0] == 200
            echoed = bytearray()
            while chunk := await stream.read():
                echoed += chunk
            await sender
        assert echoed == body

    run(main)


def test_sending_waits_for_the_peers_window(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        stream = await open_stream(pool, up)
        async with stream:
            await stream.send_headers("POST", "http", up.address, "/hang", [], end_stream=False)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stream.send_data(pattern(1024 * 1024), end_stream=True)
        # /hang never reads: only the first window (65,535 bytes) was allowed out
        assert 0 < await settle(lambda: up.received) <= 65535

    run(main)


def test_a_slow_reader_holds_back_the_upstream(up: Http2Upstream) -> None:
    size = 4 * STREAM_WINDOW

    async def main(pool: Http2Pool) -> None:
        stream = await open_stream(pool, up)
        async with stream:
            await stream.send_headers("GET", "http", up.address, f"/bytes/{size}", [], True)
            assert (await stream.response_headers())[0] == 200
            # nothing read yet: the upstream may send one stream window, and no more
            held = await settle(lambda: up.sent)
            assert STREAM_WINDOW // 2 <= held <= STREAM_WINDOW
            data = bytearray()
            while chunk := await stream.read():  # reading opens the window again
                data += chunk
            assert data == pattern(size)

    run(main)


def test_body_chunks_are_read_as_they_arrive(up: Http2Upstream) -> None:
    """Nothing waits for the end of the body: streamed responses stream (SSE, downloads)."""

    async def main(pool: Http2Pool) -> None:
        stream = await open_stream(pool, up)
        async with stream:
            await stream.send_headers("GET", "http", up.address, "/chunks/3/500", [], True)
            assert (await stream.response_headers())[0] == 200
            reads = [await stream.read() for _ in range(4)]
        assert reads == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n", b""]

    run(main)


def test_trailers_arrive_after_the_body(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        status, _, body, stream = await fetch(pool, up, "/trailers")
        assert (status, body, stream.trailers, stream.ended) == (
            200, b"ok", (("x-trailer", "done"),), True,
        )  # fmt: skip
        # a unary gRPC call by hand: one length-prefixed message each way, status in trailers
        message = grpc_message(b"hello")
        headers = [("content-type", "application/grpc"), ("te", "trailers")]
        status, response_headers, body, stream = await fetch(
            pool, up, "/grpc/0", "POST", message, headers
        )
        assert status == 200 and ("content-type", "application/grpc") in response_headers
        assert body == message and stream.trailers == (("grpc-status", "0"),)

    run(main)


def test_a_reset_mid_body_fails_the_read_after_what_arrived(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        stream = await open_stream(pool, up)
        async with stream:
            await stream.send_headers("GET", "http", up.address, "/reset/1000/2", [], True)
            assert (await stream.response_headers())[0] == 200
            data = bytearray()
            with pytest.raises(UpstreamFailure) as e:
                while chunk := await stream.read():
                    data += chunk
        assert data == pattern(1000)
        assert (e.value.kind, e.value.flag) == (REMOTE_RESET, "UR")
        assert e.value.detail == "RST_STREAM INTERNAL_ERROR (0x2)"
        # only that stream ended: the connection carries the next one
        assert (await fetch(pool, up, "/status/204"))[0] == 204 and up.connections == 1

    run(main)


def test_a_refused_stream_is_envoys_remote_refused_stream_reset(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        with pytest.raises(UpstreamFailure) as e:
            await fetch(pool, up, "/rst/7")
        assert (e.value.kind, e.value.flag) == (REFUSED, "UR")
        assert e.value.detail == "RST_STREAM REFUSED_STREAM (0x7)"

    run(main)


def test_a_stream_reset_from_this_side_frees_its_slot(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        stream = await open_stream(pool, up)
        await stream.send_headers("GET", "http", up.address, "/hang", [], True)
        conn = stream.connection
        assert conn.active == 1
        stream.reset()
        assert conn.active == 0
        with pytest.raises(UpstreamFailure):
            await stream.response_headers()
        assert (await fetch(pool, up, "/status/200"))[0] == 200
        assert up.resets_received == [8] and up.connections == 1  # CANCEL

    run(main)


def test_goaway_refuses_streams_above_its_last_and_lets_the_others_finish(
    up: Http2Upstream,
) -> None:
    async def main(pool: Http2Pool) -> None:
        first = asyncio.create_task(fetch(pool, up, "/delay/400"))
        second = asyncio.create_task(fetch(pool, up, "/delay/400"))
        while up.peak_streams < 2:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(up.goaway, 1)  # stream 1 will be served, stream 3 will not
        with pytest.raises(UpstreamFailure) as e:
            await second
        assert (e.value.kind, e.value.flag) == (REFUSED, "UR")
        assert e.value.detail == "GOAWAY NO_ERROR (0x0), last stream 1: stream 3 never processed"
        assert (await first)[0] == 200
        # new streams go to a new connection
        assert (await fetch(pool, up, "/status/200"))[0] == 200 and up.connections == 2

    run(main)


def test_a_connection_that_said_goaway_takes_no_new_stream(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        assert (await fetch(pool, up, "/goaway"))[0] == 200  # served: it is the last stream
        assert (await fetch(pool, up, "/status/200"))[0] == 200
        assert up.connections == 2 and pool.connections == 1

    run(main)


def test_response_headers_over_envoys_limits_fail_only_their_stream(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        for path in ("/headers/101/1", "/headers/2/40000"):  # count, then size (60 KiB)
            with pytest.raises(UpstreamFailure) as e:
                await fetch(pool, up, path)
            assert (e.value.kind, e.value.flag) == (PROTOCOL, "UPE")
            assert "over Envoy's limits" in (e.value.detail or "")
        assert (await fetch(pool, up, "/headers/99/100"))[0] == 200 and up.connections == 1
        # trailers are bounded alike: the body that came before them is still read
        stream = await open_stream(pool, up)
        async with stream:
            await stream.send_headers("GET", "http", up.address, "/trailers/101/1", [], True)
            assert (await stream.response_headers())[0] == 200
            assert await stream.read() == b"ok"
            with pytest.raises(UpstreamFailure) as e:
                await stream.read()
        assert e.value.detail == "response trailers over Envoy's limits (60 KiB, 100 headers)"
        assert stream.trailers is None and up.connections == 1

    run(main)


def test_request_headers_over_the_peers_limit_are_never_sent() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream(max_header_list_size=1000) as up:
            with pytest.raises(UpstreamFailure) as e:
                await fetch(pool, up, "/", headers=[("x-big", "v" * 2000)])
            assert (e.value.kind, e.value.flag) == (PROTOCOL, "UPE")
            assert "SETTINGS_MAX_HEADER_LIST_SIZE of 1000" in (e.value.detail or "")
            assert (await fetch(pool, up, "/", headers=[("x-small", "v")]))[0] == 200
            assert [r.path for r in up.requests] == ["/"]

    run(main)


@pytest.mark.parametrize(
    ("method", "path", "authority", "headers"),
    [
        ("G(ET", "/", "svc", []),
        ("GET", "/a b", "svc", []),
        ("GET", "http://elsewhere/", "svc", []),
        ("GET", "/", "svc\r\nx-injected: 1", []),
        ("GET", "/", "svc", [("x-a", "v\r\nx-injected: 1")]),
        ("GET", "/", "svc", [("x-a", "v\x00")]),
        ("GET", "/", "svc", [("Bad Name", "v")]),
    ],
)
def test_a_request_that_is_not_well_formed_is_never_sent(
    up: Http2Upstream, method: str, path: str, authority: str, headers: list[tuple[str, str]]
) -> None:
    async def main(pool: Http2Pool) -> None:
        stream = await open_stream(pool, up)
        with pytest.raises(UpstreamFailure) as e:
            await stream.send_headers(method, "http", authority, path, headers, True)
        assert (e.value.kind, e.value.flag) == (PROTOCOL, "UPE")
        assert stream.connection.active == 0  # the slot went back
        assert (await fetch(pool, up, "/status/204"))[0] == 204
        assert up.started == 1 and up.connections == 1

    run(main)


def test_connection_specific_headers_are_not_sent_and_te_trailers_is(up: Http2Upstream) -> None:
    async def main(pool: Http2Pool) -> None:
        headers = [("Host", "svc"), ("Connection", "keep-alive"), ("Keep-Alive", "5"),
                   ("Transfer-Encoding", "chunked"), ("TE", "trailers"), ("X-Kept", "yes")]  # fmt: skip
        assert (await fetch(pool, up, "/", headers=headers))[0] == 200
        assert up.requests[-1].headers == {"te": "trailers", "x-kept": "yes"}

    run(main)


def test_a_peer_that_does_not_speak_http2_is_a_protocol_error() -> None:
    async def main(pool: Http2Pool) -> None:
        with Upstream("http1") as http1, pytest.raises(UpstreamFailure) as e:
            await pool.open_stream(("http", "127.0.0.1", http1.port), 2.0)
        assert (e.value.kind, e.value.flag) == (PROTOCOL, "UPE")
        assert pool.connections == 0

    run(main)


def test_a_connection_lost_mid_stream_is_a_connection_termination() -> None:
    async def main(pool: Http2Pool) -> None:
        up = Http2Upstream().start()
        stream = await open_stream(pool, up)
        await stream.send_headers("GET", "http", up.address, "/hang", [], True)
        await asyncio.to_thread(up.stop)
        with pytest.raises(UpstreamFailure) as e:
            await stream.response_headers()
        assert (e.value.kind, e.value.flag) == (TERMINATION, "UC")
        assert pool.connections == 0

    run(main)


def test_a_connection_closed_after_goaway_says_so() -> None:
    async def main(pool: Http2Pool) -> None:
        up = Http2Upstream().start()
        stream = await open_stream(pool, up)
        await stream.send_headers("GET", "http", up.address, "/hang", [], True)
        await asyncio.to_thread(up.goaway, None, 2)  # covers the stream, which hangs on
        while not stream.connection.going_away:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(up.stop)
        with pytest.raises(UpstreamFailure) as e:
            await stream.response_headers()
        assert (e.value.kind, e.value.flag) == (TERMINATION, "UC")
        assert (
            e.value.detail == "connection closed after GOAWAY INTERNAL_ERROR (0x2), last stream 1"
        )

    run(main)
