"""A real HTTP/2 server on 127.0.0.1 that answers by path and misbehaves on cue.

The HTTP/2 sibling of :class:`~chaoskit.testing.Upstream`, on the h2 library, for tests of
HTTP/2 and gRPC upstreams: h2c with prior knowledge, or TLS with a self-signed certificate and
ALPN (``tls=True``; ``alpn=("http/1.1",)`` makes a server that refuses HTTP/2). It runs its own
event loop in a thread, so synchronous tests, asyncio tests and grpc-style clients can all use
it. Flow control is real both ways: a request body is acknowledged only as the handler reads
it, and responses are sent only as the client's windows allow.

- ``/echo`` — streams the request body back as it arrives;
- ``/bytes/<n>`` — ``n`` bytes of body; ``/chunks/<count>/<ms>`` — ``count`` chunks
  (``chunk <i>\\n``), ``ms`` apart; ``/delay/<ms>`` — 200 after ``ms``; ``/status/<code>``;
- ``/trailers[/<count>/<size>]`` — body ``ok``, then trailers ``x-trailer: done`` (and
  ``count`` more of ``size`` bytes each);
- ``/grpc/<code>[/<ms>]`` — gRPC: echoes each length-prefixed message (after ``ms``), then
  trailers ``grpc-status: <code>`` (and ``grpc-message`` when not 0);
  ``/grpc-stream/<count>/<ms>`` — gRPC server streaming: ``count`` messages
  (``message <i>``), ``ms`` apart, then ``grpc-status: 0``;
- ``/reset/<n>/<code>`` — headers, ``n`` body bytes, then RST_STREAM ``code``;
  ``/rst/<code>`` — RST_STREAM ``code`` before any response (7 is ``REFUSED_STREAM``);
- ``/goaway`` — GOAWAY naming this stream as the last, then 200; the connection closes once
  its streams are done (:meth:`Http2Upstream.goaway` sends one from the test instead);
- ``/headers/<count>/<size>`` — 200 with ``count`` extra headers of ``size`` bytes each;
- ``/hang`` — never reads the body, never answers;
- anything else — 200 with JSON ``{"upstream", "method", "path", "headers", "body_length"}``.

``fail_first=N`` answers the first N requests with ``fail_status``, or for gRPC requests
(``content-type: application/grpc``) with a trailers-only ``grpc-status: 14`` (UNAVAILABLE),
what a retry test needs. Every request received in full is kept in
:attr:`Http2Upstream.requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from chaoskit.testing.certs import self_signed
from chaoskit.testing.upstream import ReceivedRequest

Header = tuple[str, str]
T = TypeVar("T")


class _Stream:
    """One request on the server: headers, a body read as the handler asks, the response."""

    def __init__(self, conn: _Connection, stream_id: int, headers: dict[str, str]) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers = headers
        self.method = headers.get(":method", "")
        self.path = headers.get(":path", "")
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.received = bytearray()
        #: the request's trailers, if it ended with some
        self.trailers: dict[str, str] = {}
        self.task: asyncio.Task[None] | None = None

    async def read(self) -> bytes:
        """The next piece of the request body (``b""`` at its end); acknowledged as read."""
        data = await self.chunks.get()
        if data:
            self.conn.acknowledge(len(data), self.id)
        return data

    async def body(self) -> bytes:
        parts = []
        while data := await self.read():
            parts.append(data)
        return b"".join(parts)


class _Connection(asyncio.Protocol):
    def __init__(self, upstream: Http2Upstream) -> None:
        self.up = upstream
        self.transport: asyncio.Transport | None = None
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        settings: dict[h2.settings.SettingCodes, int] = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: upstream.max_concurrent_streams,
        }
        if upstream.max_header_list_size is not None:
            settings[h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE] = upstream.max_header_list_size
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.streams: dict[int, _Stream] = {}
        self.draining = False
        self._window: list[asyncio.Future[None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.up.connections += 1
        self.up._conns.add(self)
        self.h2.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.up._conns.discard(self)
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self._wake()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.close()
            return
        for event in events:
            self._dispatch(event)
        self.flush()

    def _dispatch(self, event: h2.events.Event) -> None:
        stream: _Stream | None
        if isinstance(event, h2.events.RequestReceived):
            headers = {str(k): str(v) for k, v in event.headers}
            stream = _Stream(self, event.stream_id, headers)
            self.streams[event.stream_id] = stream
            self.up.peak_streams = max(self.up.peak_streams, len(self.streams))
            stream.task = asyncio.get_running_loop().create_task(self._run(stream))
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                self.acknowledge(event.flow_controlled_length, event.stream_id)
                return
            stream.received += event.data
            self.up.received += len(event.data)
            stream.chunks.put_nowait(event.data)
            # padding is never the handler's to read: hand its share of the window back now
            self.acknowledge(event.flow_controlled_length - len(event.data), event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.trailers = {str(k): str(v) for k, v in event.headers}
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.chunks.put_nowait(b"")
                with self.up.lock:
                    self.up.request_trailers.append(stream.trailers)
                    self.up.requests.append(
                        ReceivedRequest(
                            stream.method, stream.path,
                            {k: v for k, v in stream.headers.items() if not k.startswith(":")},
                            bytes(stream.received),
                        )
                    )  # fmt: skip
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            self.up.resets_received.append(event.error_code)
            if stream is not None and stream.task is not None:
                stream.task.cancel()
            self._wake()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._wake()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close()

    # -- what handlers use -----------------------------------------------------------------

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def acknowledge(self, size: int, stream_id: int) -> None:
        if size > 0:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.acknowledge_received_data(size, stream_id)
            self.flush()

    def respond(self, stream: _Stream, status: int, headers: list[Header], end: bool) -> None:
        self.h2.send_headers(stream.id, [(":status", str(status)), *headers], end_stream=end)
        self.flush()

    async def send(self, stream: _Stream, data: bytes, end: bool) -> None:
        """Send as the client's windows allow."""
        view = memoryview(data)
        while view:
            window = self.h2.local_flow_control_window(stream.id)
            if window <= 0:
                await self._wait()
                continue
            size = min(len(view), window, self.h2.max_outbound_frame_size)
            last = end and size == len(view)
            self.h2.send_data(stream.id, view[:size].tobytes(), end_stream=last)
            self.up.sent += size
            view = view[size:]
            self.flush()
            await asyncio.sleep(0)  # let other streams have the connection too
        if end and not data:
            self.h2.end_stream(stream.id)
            self.flush()

    def trailers(self, stream: _Stream, headers: list[Header]) -> None:
        self.h2.send_headers(stream.id, headers, end_stream=True)
        self.flush()

    def reset(self, stream: _Stream, code: int) -> None:
        self.h2.reset_stream(stream.id, code)
        self.flush()

    def goaway(self, last_stream_id: int | None, code: int = 0) -> None:
        """GOAWAY: streams above ``last_stream_id`` (default: the newest) are not served."""
        last = self.h2.highest_inbound_stream_id if last_stream_id is None else last_stream_id
        self.h2.close_connection(error_code=code, last_stream_id=last)
        # h2 refuses every frame after its own GOAWAY: stay open for the streams it covers
        self.h2.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
        self.flush()
        self.draining = True
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last and stream.task is not None:
                stream.task.cancel()
                del self.streams[stream_id]
        self._maybe_close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- internals -------------------------------------------------------------------------

    async def _run(self, stream: _Stream) -> None:
        try:
            await self.up._handle(stream)
        except asyncio.CancelledError:
            pass
        except h2.exceptions.ProtocolError:  # the stream closed under the handler
            pass
        finally:
            self.streams.pop(stream.id, None)
            self._maybe_close()

    def _maybe_close(self) -> None:
        if self.draining and not self.streams:
            self.close()

    async def _wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._window.append(future)
        await future

    def _wake(self) -> None:
        for future in self._window:
            if not future.done():
                future.set_result(None)
        self._window.clear()


Handler = Callable[[_Stream, list[str]], Awaitable[None]]


class Http2Upstream:
    """A threaded HTTP/2 server on ``127.0.0.1:0``; use it as a context manager."""

    def __init__(
        self,
        name: str = "upstream",
        *,
        tls: bool = False,
        alpn: tuple[str, ...] = ("h2",),
        max_concurrent_streams: int = 100,
        max_header_list_size: int | None = None,
        fail_first: int = 0,
        fail_status: int = 503,
    ) -> None:
        self.name = name
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.tls = tls
        self.alpn = alpn
        self.max_concurrent_streams = max_concurrent_streams
        self.max_header_list_size = max_header_list_size
        self.requests: list[ReceivedRequest] = []
        #: the trailers of each of :attr:`requests` (``{}``: it had none)
        self.request_trailers: list[dict[str, str]] = []
        #: connections accepted so far
        self.connections = 0
        #: requests started so far (their headers arrived)
        self.started = 0
        #: the most streams open at once on one connection
        self.peak_streams = 0
        #: body bytes sent and received, all streams together
        self.sent = 0
        self.received = 0
        #: error codes of the RST_STREAM frames received from clients
        self.resets_received: list[int] = []
        self.lock = threading.Lock()
        self.port = 0
        self._conns: set[_Connection] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._certs: tempfile.TemporaryDirectory[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def start(self) -> Http2Upstream:
        context = self._tls_context() if self.tls else None
        self._thread.start()
        self._server = self._call(
            self._loop.create_server(lambda: _Connection(self), "127.0.0.1", 0, ssl=context)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for conn in list(self._conns):
                if conn.transport is not None:
                    conn.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            self._call(shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()
        if self._certs is not None:
            self._certs.cleanup()

    def goaway(self, last_stream_id: int | None = None, code: int = 0) -> None:
        """Send GOAWAY on every open connection (``last_stream_id`` ``None``: the newest
        stream each has seen), serve the streams it covers, then close."""

        async def send() -> None:
            for conn in list(self._conns):
                conn.goaway(last_stream_id, code)

        self._call(send())

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.request_trailers.clear()

    def __enter__(self) -> Http2Upstream:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _call(self, coro: Awaitable[T]) -> T:
        async def run() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _tls_context(self) -> ssl.SSLContext:
        self._certs = tempfile.TemporaryDirectory(prefix="chaoskit-h2-")
        cert, key = self_signed(Path(self._certs.name), self.name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.set_alpn_protocols(list(self.alpn))
        return context

    async def _handle(self, stream: _Stream) -> None:
        conn = stream.conn
        self.started += 1
        if self.started <= self.fail_first:
            await stream.body()
            if stream.headers.get("content-type", "").startswith("application/grpc"):
                grpc = [("content-type", "application/grpc"), ("grpc-status", "14"),
                        ("grpc-message", "failing on purpose")]  # fmt: skip
                conn.respond(stream, 200, grpc, end=True)
            else:
                conn.respond(stream, self.fail_status, [], end=True)
            return
        path = stream.path.split("?")[0]
        parts = path.strip("/").split("/")
        handler = _HANDLERS.get(parts[0])
        if handler is not None:
            await handler(stream, parts[1:])
            return
        body = await stream.body()
        payload = json.dumps(
            {"upstream": self.name, "method": stream.method, "path": stream.path,
             "headers": {k: v for k, v in stream.headers.items() if not k.startswith(":")},
             "body_length": len(body)}
        ).encode()  # fmt: skip
        headers = [("content-type", "application/json"), ("content-length", str(len(payload)))]
        conn.respond(stream, 200, headers, end=False)
        await conn.send(stream, payload, end=True)


async def _echo(stream: _Stream, args: list[str]) -> None:
    conn = stream.conn
    conn.respond(stream, 200, [("content-type", "application/octet-stream")], end=False)
    while data := await stream.read():
        await conn.send(stream, data, end=False)
    await conn.send(stream, b"", end=True)


async def _bytes(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    size = int(args[0])
    conn = stream.conn
    conn.respond(stream, 200, [("content-length", str(size))], end=size == 0)
    if size:
        await conn.send(stream, pattern(size), end=True)


async def _chunks(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    count, pause = int(args[0]), int(args[1]) / 1000
    conn = stream.conn
    conn.respond(stream, 200, [("content-type", "text/plain")], end=False)
    for i in range(count):
        if i:
            await asyncio.sleep(pause)
        await conn.send(stream, f"chunk {i}\n".encode(), end=i == count - 1)


async def _delay(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    await asyncio.sleep(int(args[0]) / 1000)
    stream.conn.respond(stream, 200, [], end=True)


async def _status(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    stream.conn.respond(stream, int(args[0]), [], end=True)


async def _trailers(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    conn = stream.conn
    conn.respond(stream, 200, [("content-type", "text/plain")], end=False)
    await conn.send(stream, b"ok", end=False)
    count, size = (int(args[0]), int(args[1])) if args else (0, 0)
    extra = [(f"x-t-{i}", "v" * size) for i in range(count)]
    conn.trailers(stream, [("x-trailer", "done"), *extra])


async def _grpc(stream: _Stream, args: list[str]) -> None:
    code = int(args[0]) if args else 0
    body = await stream.body()
    if len(args) > 1:
        await asyncio.sleep(int(args[1]) / 1000)
    conn = stream.conn
    conn.respond(stream, 200, [("content-type", "application/grpc")], end=False)
    offset = 0
    while offset + 5 <= len(body):
        length = int.from_bytes(body[offset + 1 : offset + 5], "big")
        await conn.send(stream, body[offset : offset + 5 + length], end=False)
        offset += 5 + length
    trailers = [("grpc-status", str(code))]
    if code:
        trailers.append(("grpc-message", f"status {code} on request"))
    conn.trailers(stream, trailers)


async def _grpc_stream(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    count, pause = int(args[0]), int(args[1]) / 1000
    conn = stream.conn
    conn.respond(stream, 200, [("content-type", "application/grpc")], end=False)
    for i in range(count):
        if i:
            await asyncio.sleep(pause)
        await conn.send(stream, grpc_message(f"message {i}".encode()), end=False)
    conn.trailers(stream, [("grpc-status", "0")])


async def _reset(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    size, code = int(args[0]), int(args[1])
    conn = stream.conn
    conn.respond(stream, 200, [("content-type", "application/octet-stream")], end=False)
    await conn.send(stream, pattern(size), end=False)
    await asyncio.sleep(0.01)  # the bytes go out before the reset
    conn.reset(stream, code)


async def _rst(stream: _Stream, args: list[str]) -> None:
    stream.conn.reset(stream, int(args[0]))


async def _goaway(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    conn = stream.conn
    conn.goaway(stream.id)
    conn.respond(stream, 200, [], end=True)


async def _headers(stream: _Stream, args: list[str]) -> None:
    await stream.body()
    count, size = int(args[0]), int(args[1])
    headers = [(f"x-h-{i}", "v" * size) for i in range(count)]
    stream.conn.respond(stream, 200, headers, end=True)


async def _hang(stream: _Stream, args: list[str]) -> None:
    await asyncio.Event().wait()


_HANDLERS: dict[str, Handler] = {
    "echo": _echo, "bytes": _bytes, "chunks": _chunks, "delay": _delay, "status": _status,
    "trailers": _trailers, "grpc": _grpc, "grpc-stream": _grpc_stream, "reset": _reset,
    "rst": _rst, "goaway": _goaway, "headers": _headers, "hang": _hang,
}  # fmt: skip


def grpc_message(payload: bytes) -> bytes:
    """One gRPC message on the wire: not compressed (0), 4-byte big-endian length, payload."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def pattern(size: int) -> bytes:
    """``size`` bytes of a repeating, recognisable body (``/bytes/<n>`` sends these)."""
    unit = b"0123456789abcdef"
    return (unit * (size // len(unit) + 1))[:size]
