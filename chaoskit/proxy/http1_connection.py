"""One keep-alive HTTP/1.1 connection to an endpoint, carrying one exchange at a time.

An ``asyncio.Protocol``: bytes from the socket go straight into the exchange's
:class:`~chaoskit.proxy.http1_response.ResponseParser`, and the body guard sees each piece as it
arrives, so a body that may not be buffered is refused before more of it is read. A connection
the upstream closes while idle is known at once (the pool does not lend it again); one cut off
mid-exchange is closed, never reused. :mod:`chaoskit.proxy.http1_pool` opens and lends these.

An exchange that may stream (``streamable``) ends as soon as the head is in while the body is
not: the body then comes piece by piece through :meth:`Http1Connection.read_chunk`, at most
:data:`STREAM_HIGH_WATER` bytes of it waiting here (the socket is not read meanwhile, so a slow
client slows the upstream down instead of filling chaoskit's memory).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from chaoskit.proxy.http1_response import ParseError, ResponseParser

Key = tuple[str, str, int]  # scheme, address, port

#: Bytes of a streamed body waiting for the client before the socket stops being read.
STREAM_HIGH_WATER = 256 * 1024


class ConnectionLost(Exception):
    """The connection ended before the response was complete (Envoy: connection termination)."""


class Http1Connection(asyncio.Protocol):
    """One upstream connection. Carries one exchange at a time; the pool lends it out."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: ResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_head: Any = None
        self._on_body: Any = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._streamable = False
        #: set once a body streams: its pieces not yet read, and who waits for the next
        self._chunks: collections.deque[bytes] | None = None
        self._queued = 0
        self._chunk_waiter: asyncio.Future[None] | None = None
        self._stream_error: BaseException | None = None
        self._reading_paused = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or parser.done:  # nothing asked for: the upstream broke framing
            self.close()
            return
        if self._chunks is not None:
            self._stream_data(parser, data)
            return
        try:
            had_head = parser.head is not None
            before = parser.body_size
            parser.feed(data)
            if parser.head is not None:
                if not had_head and self._streamable and not parser.done:
                    self._start_stream(parser)
                    return
                if not had_head and self._on_head is not None:
                    self._on_head(parser.head)
                if parser.body_size > before and self._on_body is not None:
                    self._on_body(parser.head, parser.body_size - before, parser.body_size)
        except Exception as e:  # ParseError, or the body guard's refusal
            self._finish(e)
            self.close()
            return
        if parser.done:
            self._finish(None)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost decides what the close meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        parser = self._parser
        if parser is not None and not parser.done:
            try:
                parser.feed_eof()
            except ParseError:
                self._finish(ConnectionLost())
                self._stream_end(ConnectionLost())
            else:
                self._finish(None)
                self._stream_end(None)
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionLost())

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- one exchange ----------------------------------------------------------------------

    async def exchange(
        self, request: bytes, body: bytes, parser: ResponseParser,
        on_head: Any = None, on_body: Any = None, *, streamable: bool = False,
    ) -> bool:  # fmt: skip
        """Send the request; return once ``parser`` holds the whole response (``False``), or,
        when ``streamable``, once it holds the head of a body still arriving (``True``: read
        the rest with :meth:`read_chunk`). Raises :class:`ConnectionLost`,
        :class:`ParseError` or what ``on_head``/``on_body`` raise (a streamed body is not
        shown to them: it is never buffered)."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise ConnectionLost()
        waiter = asyncio.get_running_loop().create_future()
        self._parser, self._waiter = parser, waiter
        self._on_head, self._on_body = on_head, on_body
        self._streamable = streamable
        if body and len(body) <= 16384:
            transport.write(request + body)
        else:
            transport.write(request)
            if body:
                transport.write(body)
        if self._paused and not self.closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
        await waiter
        return self._chunks is not None

    def _finish(self, error: BaseException | None) -> None:
        waiter, self._waiter = self._waiter, None
        self._on_head = self._on_body = None
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():  # answered before the body was all sent
            drain.set_result(None)
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def release(self) -> None:
        self._parser = None
        self._chunks = None
        self._queued = 0
        self._stream_error = None
        if self._reading_paused:
            self._reading_paused = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # -- a streamed body ---------------------------------------------------------------------

    def _start_stream(self, parser: ResponseParser) -> None:
        self._chunks = collections.deque(parser.take())
        self._queued = sum(len(c) for c in self._chunks)
        self._finish(None)

    def _stream_data(self, parser: ResponseParser, data: bytes) -> None:
        try:
            parser.feed(data)
        except ParseError as e:
            self._stream_end(e)
            self.close()
            return
        chunks = self._chunks
        assert chunks is not None
        for part in parser.take():
            chunks.append(part)
            self._queued += len(part)
        if parser.done:
            self._stream_end(None)
            return
        if self._queued > STREAM_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake_reader()

    def _stream_end(self, error: BaseException | None) -> None:
        if self._chunks is None:
            return
        if error is not None and self._stream_error is None:
            self._stream_error = error
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter, self._chunk_waiter = self._chunk_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read_chunk(self) -> bytes:
        """The next piece of a streamed body, ``b""`` once it is complete. Raises
        :class:`ConnectionLost` (or :class:`ParseError`) when the upstream broke it off."""
        while True:
            chunks, parser = self._chunks, self._parser
            if chunks is None or parser is None:
                raise ConnectionLost()
            if chunks:
                chunk = chunks.popleft()
                self._queued -= len(chunk)
                if self._reading_paused and self._queued <= STREAM_HIGH_WATER // 2:
                    self._reading_paused = False
                    if self.transport is not None and not self.closed:
                        self.transport.resume_reading()
                return chunk
            if self._stream_error is not None:
                raise self._stream_error
            if parser.done:
                return b""
            if self.closed:
                raise ConnectionLost()
            self._chunk_waiter = asyncio.get_running_loop().create_future()
            await self._chunk_waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
