"""The gRPC origin of :mod:`bench.grpc`: ``python -m bench.grpc_origin PORT [--tls PORT DIR]``.

A grpcio asyncio server on 127.0.0.1:PORT with one unary method, ``/bench.Echo/Say``, that
answers the request's bytes (a generic handler with raw-bytes messages: no generated protobuf
code, as ``tests/integration/test_grpc.py`` does). With ``--tls PORT DIR`` the same server also
listens on a second port with TLS (ALPN ``h2``, as grpcio servers offer), under a self-signed
certificate for 127.0.0.1 made at start-up and written to ``DIR/cert.pem`` (the client of the
``direct-tls`` configuration trusts that file; the proxies do not verify it, as
``mitmdump --ssl-insecure`` and chaoskit towards endpoints never do). Prints ``ready`` once it
listens on every port; runs until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc

from chaoskit.testing.certs import self_signed

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Say"
#: The name the self-signed certificate is made out to (its subject alternative name is the
#: address 127.0.0.1, which the direct client dials).
CERT_NAME = "bench-origin"


async def _say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


def tls_credentials(directory: Path) -> grpc.ServerCredentials:
    """A fresh self-signed certificate in ``directory``, as the server's credentials."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(directory, CERT_NAME)
    return grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])


async def serve(port: int, tls: tuple[int, Path] | None = None) -> None:
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Say": grpc.unary_unary_rpc_method_handler(_say)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    if tls is not None:
        server.add_secure_port(f"127.0.0.1:{tls[0]}", tls_credentials(tls[1]))
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_origin")
    parser.add_argument("port", type=int, help="the plaintext (h2c) port")
    parser.add_argument(
        "--tls", nargs=2, metavar=("PORT", "DIR"),
        help="also serve TLS on PORT, with a self-signed certificate written into DIR",
    )  # fmt: skip
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    tls = (int(args.tls[0]), Path(args.tls[1])) if args.tls else None
    asyncio.run(serve(args.port, tls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
