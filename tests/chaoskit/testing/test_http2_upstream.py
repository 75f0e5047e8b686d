"""What the HTTP/2 test server offers beyond what the client's tests use: failing the first
requests (HTTP status, or gRPC's trailers-only UNAVAILABLE) and gRPC server streaming."""

from __future__ import annotations

import pytest

from chaoskit.proxy.http2_pool import Http2Pool
from chaoskit.testing.http2_upstream import Http2Upstream, grpc_message
from tests.chaoskit.proxy.test_http2_connection import fetch, open_stream, run

pytestmark = pytest.mark.integration

GRPC = [("content-type", "application/grpc"), ("te", "trailers")]


def test_the_first_requests_fail_as_asked() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream(fail_first=1, fail_status=502) as up:
            assert [(await fetch(pool, up, "/"))[0] for _ in range(2)] == [502, 200]
        with Http2Upstream(fail_first=1) as up:
            message = grpc_message(b"x")
            status, headers, body, stream = await fetch(pool, up, "/grpc/0", "POST", message, GRPC)
            # trailers-only: the status is in the only headers sent
            assert (status, body, stream.trailers) == (200, b"", None)
            assert ("grpc-status", "14") in headers
            _, _, body, stream = await fetch(pool, up, "/grpc/0", "POST", message, GRPC)
            assert body == message and stream.trailers == (("grpc-status", "0"),)

    run(main)


def test_grpc_server_streaming_sends_each_message_as_it_goes() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            stream = await open_stream(pool, up)
            async with stream:
                await stream.send_headers(
                    "POST", "http", up.address, "/grpc-stream/3/300", GRPC, False
                )
                await stream.send_data(grpc_message(b""), end_stream=True)
                assert (await stream.response_headers())[0] == 200
                reads = [await stream.read() for _ in range(4)]
            assert reads == [grpc_message(f"message {i}".encode()) for i in range(3)] + [b""]
            assert stream.trailers == (("grpc-status", "0"),)

    run(main)
