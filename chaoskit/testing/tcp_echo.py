"""A small real TCP server on 127.0.0.1 that says who it is and echoes what it gets.

Tests of the TCP listeners need a real upstream (real sockets, real half-closes). Each
:class:`TcpEcho` listens on a free port; for every connection it first sends its ``greeting``
(if any: which backend answered, for routing tests), then writes back every byte it reads until
the client half-closes, then closes its side too.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from types import TracebackType


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    echo: TcpEcho


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        echo = self.server.echo
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with echo.lock:
            echo.connections += 1
        try:
            if echo.greeting:
                sock.sendall(echo.greeting)
            while data := sock.recv(65536):
                with echo.lock:
                    echo.received += len(data)
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return  # the client reset or vanished: nothing to answer


class TcpEcho:
    """A threaded TCP echo server on ``127.0.0.1:0``; use it as a context manager."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        #: connections accepted, bytes received (read under :attr:`lock` from other threads)
        self.connections = 0
        self.received = 0
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.echo = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> TcpEcho:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        with contextlib.suppress(OSError):
            self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> TcpEcho:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
