"""The gRPC origin of :mod:`bench.grpc`: ``python -m bench.grpc_origin PORT``.

A grpcio asyncio server on 127.0.0.1:PORT with one unary method, ``/bench.Echo/Say``, that
answers the request's bytes (a generic handler with raw-bytes messages: no generated protobuf
code, as ``tests/integration/test_grpc.py`` does). Prints ``ready`` once it listens; runs until
it is terminated.
"""

from __future__ import annotations

import asyncio
import sys

import grpc

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Say"


async def _say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Say": grpc.unary_unary_rpc_method_handler(_say)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    asyncio.run(serve(int(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
