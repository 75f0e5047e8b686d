"""A small real HTTP server on 127.0.0.1 that says who it is and misbehaves on cue.

Tests of the proxy need real upstreams (real sockets, real connection errors). Each
:class:`Upstream` listens on a free port and answers by path:

- ``/status/<code>`` — that status; ``/delay/<ms>`` — sleep, then 200; ``/close`` — close the
  connection without answering; ``/reset`` — abort with a TCP RST;
- ``/stream/<n>/<ms>`` — a chunked body of ``n`` pieces (``piece <i>\n``), one every ``ms``;
  ``/sse/<n>/<ms>`` — the same as Server-Sent Events (``text/event-stream``, ``data: <i>``);
  ``/cut/<n>`` — ``n`` chunked pieces, then the connection closes mid-body;
- anything else — 200 with JSON ``{"upstream": name, "method", "path", "headers"}``.

``fail_first=N`` answers the first N requests with ``fail_status`` (for retry tests).
Every request received is kept in :attr:`Upstream.requests`.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    upstream: Upstream


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the client's
    # delayed ACK would add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        up = self.server.upstream
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        received = ReceivedRequest(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        with up.lock:
            up.requests.append(received)
            count = len(up.requests)
        path = self.path.split("?")[0]
        if path == "/close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if path == "/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if path.startswith(("/stream/", "/sse/", "/cut/")):
            self._stream(up, path)
            return
        status = 200
        if count <= up.fail_first:
            status = up.fail_status
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        elif path.startswith("/delay/"):
            up.wait(int(path.rsplit("/", 1)[1]) / 1000)
        payload = json.dumps(
            {"upstream": up.name, "method": self.command, "path": self.path,
             "headers": received.headers}
        ).encode()  # fmt: skip
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, up: Upstream, path: str) -> None:
        kind, *numbers = path.strip("/").split("/")
        count = int(numbers[0])
        pause = int(numbers[1]) / 1000 if len(numbers) > 1 else 0.0
        sse = kind == "sse"
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if sse else "text/plain")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for i in range(count):
                if i and pause:
                    up.wait(pause)
                piece = f"data: {i}\n\n" if sse else f"piece {i}\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece.encode()))
                self.wfile.flush()
            if kind == "cut":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the proxy went away mid-stream (what some tests do on purpose)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class Upstream:
    """A threaded HTTP/1.1 server on ``127.0.0.1:0``; use it as a context manager."""

    def __init__(
        self, name: str = "upstream", *, fail_first: int = 0, fail_status: int = 503
    ) -> None:
        self.name = name
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.requests: list[ReceivedRequest] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.upstream = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait(self, seconds: float) -> None:
        """Sleep in a handler thread, cut short when the server stops."""
        self._stop.wait(seconds)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def start(self) -> Upstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def free_port() -> int:
    """A port nothing listens on right now (for 'connection refused' endpoints)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
