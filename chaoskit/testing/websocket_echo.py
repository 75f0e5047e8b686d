"""A small real WebSocket echo server on 127.0.0.1 that says who it is.

Tests of WebSockets through the proxy need a real upstream speaking the real protocol. Each
:class:`EchoServer` listens on a free port (a thread per connection, RFC 6455 by ``wsproto``,
which mitmproxy already depends on) and:

- accepts a handshake with its name in the ``x-upstream`` response header, except on
  ``/status/<code>``, which refuses the upgrade with that status;
- echoes every text and binary message, answers pings, and returns a close frame's code;
- keeps every handshake it received (:attr:`EchoServer.handshakes`) and counts the messages it
  echoed (:attr:`EchoServer.messages`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from types import TracebackType

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)


@dataclasses.dataclass(frozen=True)
class Handshake:
    path: str
    host: str
    #: lower-case names; the handshake's own ``sec-websocket-*`` fields included
    headers: dict[str, str]


class EchoServer:
    """A threaded WebSocket echo server on ``127.0.0.1:0``; use it as a context manager."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.handshakes: list[Handshake] = []
        self.messages = 0
        self.lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def clear(self) -> None:
        with self.lock:
            self.handshakes.clear()
            self.messages = 0

    def start(self) -> EchoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self.lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self._open.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        try:
            while not self._stopped.is_set():
                data = conn.recv(65536)
                ws.receive_data(data or None)
                if not self._answer(ws, conn) or not data:
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self._open.discard(conn)
            conn.close()

    def _answer(self, ws: WSConnection, conn: socket.socket) -> bool:
        """Answer every event that arrived; False when the connection is over."""
        for event in ws.events():
            if isinstance(event, Request):
                headers = {k.decode().lower(): v.decode() for k, v in event.extra_headers}
                with self.lock:
                    self.handshakes.append(Handshake(event.target, event.host, headers))
                path = event.target.split("?")[0]
                if path.startswith("/status/"):
                    status = int(path.rsplit("/", 1)[1])
                    refusal = RejectConnection(
                        status_code=status, headers=[(b"content-length", b"0")]
                    )
                    conn.sendall(ws.send(refusal))
                    return False
                accept = AcceptConnection(extra_headers=[(b"x-upstream", self.name.encode())])
                conn.sendall(ws.send(accept))
            elif isinstance(event, TextMessage | BytesMessage):
                conn.sendall(ws.send(event))
                if event.message_finished:
                    with self.lock:
                        self.messages += 1
            elif isinstance(event, Ping):
                conn.sendall(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                with contextlib.suppress(Exception):  # already closed by the remote's close
                    conn.sendall(ws.send(event.response()))
                return False
        return True
