"""An upstream that misbehaves on purpose, at the socket level, by request path.

:class:`chaoskit.testing.Upstream` is a well-behaved HTTP server with a few failure paths;
this one breaks HTTP itself, the way real servers and middleboxes do:

- ``/close`` — reads the request, closes without a byte (FIN);
- ``/reset-mid-body`` — headers announcing 1000 bytes, 100 of them, then a TCP RST;
- ``/malformed`` — a response that is not HTTP;
- ``/stall-after-headers`` — complete headers announcing a body that never comes;
- ``/stall`` — reads the request and never answers;
- ``/huge-announced`` — ``content-length: 1 GiB``, then data for as long as the peer reads;
- ``/huge-chunked`` — chunked, 1 MiB chunks, up to 256 MiB, for as long as the peer reads;
- ``/big/<n>`` — a well-formed response of n bytes;
- anything else — ``200 ok``.

Every connection's fate is kept: bytes sent, and whether the peer closed it (so tests can show
that the proxy gave up a stalled or oversized upstream connection instead of leaking it).
Every loop is bounded by :attr:`stop` and by size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import struct
import threading
import time
from types import TracebackType

MiB = 1024 * 1024


@dataclasses.dataclass
class Conn:
    path: str = ""
    sent: int = 0
    peer_closed: bool = False
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class Misbehaving:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.stop = threading.Event()
        self.conns: list[Conn] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> Misbehaving:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)

    def __enter__(self) -> Misbehaving:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def clear(self) -> None:
        with self.lock:
            self.conns.clear()

    def for_path(self, prefix: str) -> list[Conn]:
        with self.lock:
            return [c for c in self.conns if c.path.startswith(prefix)]

    # -- serving ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        state = Conn()
        try:
            conn.settimeout(0.2)
            head = b""
            deadline = time.monotonic() + 10
            while b"\r\n\r\n" not in head and time.monotonic() < deadline:
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            state.path = line.split(" ")[1] if line.count(" ") >= 2 else ""
            with self.lock:
                self.conns.append(state)
            self._respond(conn, state)
        except OSError:
            state.peer_closed = True
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            state.done.set()

    def _send(self, conn: socket.socket, state: Conn, data: bytes) -> bool:
        """False once the peer is gone."""
        try:
            conn.sendall(data)
        except OSError:
            state.peer_closed = True
            return False
        state.sent += len(data)
        return True

    def _wait_for_peer_close(self, conn: socket.socket, state: Conn, limit: float) -> None:
        deadline = time.monotonic() + limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn.recv(65536) == b"":
                    state.peer_closed = True
                    return
            except TimeoutError:
                continue
            except OSError:
                state.peer_closed = True
                return

    def _respond(self, conn: socket.socket, state: Conn) -> None:
        path = state.path
        if path == "/close":
            conn.shutdown(socket.SHUT_RDWR)
        elif path == "/reset-mid-body":
            self._send(conn, state, b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 100)
            self.stop.wait(0.05)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif path == "/malformed":
            self._send(conn, state, b"SPDY/9 banana\r\nthis is not http\r\n\r\n")
            conn.shutdown(socket.SHUT_WR)
            self._wait_for_peer_close(conn, state, 5)
        elif path == "/stall-after-headers":
            self._send(conn, state, b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
            self._wait_for_peer_close(conn, state, 30)
        elif path == "/stall":
            self._wait_for_peer_close(conn, state, 30)
        elif path == "/huge-announced":
            self._send(conn, state, b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
            chunk = b"x" * MiB
            while not self.stop.is_set() and state.sent < 256 * MiB:
                if not self._send(conn, state, chunk):
                    return
        elif path == "/huge-chunked":
            self._send(conn, state, b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (MiB, b"y" * MiB)
            while not self.stop.is_set() and state.sent < 256 * MiB:
                if not self._send(conn, state, chunk):
                    return
            self._send(conn, state, b"0\r\n\r\n")
        elif path.startswith("/big/"):
            n = int(path.rsplit("/", 1)[1])
            self._send(conn, state, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % n)
            self._send(conn, state, b"z" * n)
            self._wait_for_peer_close(conn, state, 5)
        else:
            self._send(conn, state, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            self._wait_for_peer_close(conn, state, 5)
