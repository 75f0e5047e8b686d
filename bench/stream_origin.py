"""The streaming origin: Server-Sent Events and large downloads over HTTP/1.1 keep-alive.

``python -m bench.stream_origin PORT`` answers, on 127.0.0.1:

``GET /sse``              ``text/event-stream``, chunked: the head and the first event in one
                          write, then one event every 100 ms, ``SSE_EVENTS`` events in all
                          (``/sse?events=N&every=MS`` changes both), then the last chunk.
``GET /download/<bytes>`` ``content-length: <bytes>``, written as fast as the peer reads: the
                          transport is refilled from one reused buffer whenever asyncio's flow
                          control resumes writing, so the origin holds at most its write buffer
                          and that buffer, never the body (a 1 GB download costs it nothing).
``GET /event``            the first event alone, ``content-length``, in one write with the head:
                          a body complete with its head, which chaoskit buffers (the control
                          the streamed first event is compared with).
``GET`` anything else     ``200`` with a short body (the harness's readiness probe).

A raw :class:`asyncio.Protocol` like :mod:`bench.origin`; it prints ``ready`` once listening.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import urllib.parse

#: Events per ``/sse`` stream and the gap between two of them.
SSE_EVENTS = 3
SSE_EVERY_S = 0.1
#: The reused download buffer (a byte pattern that no layer could compress away).
_PIECE = bytes(range(256)) * 1024
_VIEW = memoryview(_PIECE)
#: asyncio pauses the writer above this much unsent data.
_HIGH_WATER = 256 * 1024


def event(i: int) -> bytes:
    """The ``i``-th event of a stream as one HTTP/1.1 chunk."""
    data = f"id: {i}\ndata: event {i}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_SSE_HEAD = _head(
    "200 OK",
    [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("transfer-encoding", "chunked"),
    ],
)
_OK = _head("200 OK", [("content-type", "text/plain"), ("content-length", "3")]) + b"ok\n"
_EVENT = b"id: 0\ndata: event 0\n\n"
_ONE_EVENT = (
    _head(
        "200 OK",
        [("content-type", "text/event-stream"), ("content-length", str(len(_EVENT)))],
    )
    + _EVENT
)
_NOT_FOUND = _head("404 Not Found", [("content-length", "0")])


class StreamOrigin(asyncio.Protocol):
    """One client connection; requests are answered one after another (no body expected)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        #: a response still being written (an event stream or a download)
        self.busy = False
        self.paused = False
        #: download bytes still to write
        self.remaining = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.remaining = 0
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def _next(self) -> None:
        """Answer the next complete request, unless one is still being answered."""
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[: self.buffer.find(b"\r\n")]).decode("latin-1")
            del self.buffer[: end + 4]
            parts = line.split(" ")
            target = urllib.parse.urlsplit(parts[1] if len(parts) > 1 else "/")
            self._answer(target.path, urllib.parse.parse_qs(target.query))

    def _answer(self, path: str, query: dict[str, list[str]]) -> None:
        assert self.transport is not None
        if path == "/sse":
            events = int(query.get("events", [SSE_EVENTS])[0])
            every = float(query.get("every", [SSE_EVERY_S * 1000])[0]) / 1000
            self.busy = True
            self.transport.write(_SSE_HEAD + event(0))
            self._schedule(1, events, every)
        elif path.startswith("/download/"):
            try:
                size = int(path.removeprefix("/download/"))
            except ValueError:
                self.transport.write(_NOT_FOUND)
                return
            self.busy = True
            self.remaining = size
            self.transport.write(_head("200 OK", [
                ("content-type", "application/octet-stream"), ("content-length", str(size)),
            ]))  # fmt: skip
            self._pump()
        elif path == "/event":
            self.transport.write(_ONE_EVENT)
        else:
            self.transport.write(_OK)

    def _schedule(self, i: int, events: int, every: float) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(every, self._send_event, i, events, every)

    def _send_event(self, i: int, events: int, every: float) -> None:
        if self.transport is None:
            return
        if i < events:
            self.transport.write(event(i))
            self._schedule(i + 1, events, every)
            return
        self.transport.write(b"0\r\n\r\n")
        self._done()

    def _pump(self) -> None:
        """Write download pieces until the body is out or the peer stops reading."""
        while self.remaining > 0 and not self.paused and self.transport is not None:
            n = min(self.remaining, len(_PIECE))
            self.transport.write(_VIEW[:n])
            self.remaining -= n
            if self.remaining == 0:
                self._done()

    def _done(self) -> None:
        self.busy = False
        asyncio.get_running_loop().call_soon(self._next)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StreamOrigin, "127.0.0.1", port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: python -m bench.stream_origin PORT", file=sys.stderr)
        return 2
    asyncio.run(serve(int(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
