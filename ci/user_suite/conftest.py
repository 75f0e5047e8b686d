"""A user's suite, run by CI against the built wheel in a fresh venv (scripts/wheel_check.sh):
it may use only what `pip install chaoskit-*.whl httpx` gives, nothing from the repository."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from shop"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def shop_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def chaos_config(shop_port: int) -> list[Any]:
    """The mesh: `shop` (HTTP) and `secure-shop` (HTTPS, intercepted), both to the server."""
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": name},
            "spec": {
                "hosts": [name],
                "ports": [{"number": number, "name": "web", "protocol": "HTTP"}],
                "resolution": "STATIC",
                "endpoints": [{"address": "127.0.0.1", "ports": {"web": shop_port}}],
            },
        }
        for name, number in (("shop", 80), ("secure-shop", 443))
    ]
