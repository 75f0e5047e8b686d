"""One keep-alive HTTP/1.1 connection to an endpoint, carrying one exchange at a time.

An ``asyncio.Protocol``: bytes from the socket go straight into the exchange's
:class:`~chaoskit.proxy.http1_response.ResponseParser`, and the body guard sees each piece as it
arrives, so a body that may not be buffered is refused before more of it is read. A connection
the upstream closes while idle is known at once (the pool does not lend it again); one cut off
mid-exchange is closed, never reused. :mod:`chaoskit.proxy.http1_pool` opens and lends these.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chaoskit.proxy.http1_response import ParseError, ResponseParser

Key = tuple[str, str, int]  # scheme, address, port


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

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or parser.done:  # nothing asked for: the upstream broke framing
            self.close()
            return
        try:
            had_head = parser.head is not None
            before = parser.body_size
            parser.feed(data)
            if parser.head is not None:
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
            else:
                self._finish(None)
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
        on_head: Any = None, on_body: Any = None,
    ) -> None:  # fmt: skip
        """Send the request; return once ``parser`` holds the whole response. Raises
        :class:`ConnectionLost`, :class:`ParseError` or what ``on_head``/``on_body`` raise."""
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise ConnectionLost()
        waiter = asyncio.get_running_loop().create_future()
        self._parser, self._waiter = parser, waiter
        self._on_head, self._on_body = on_head, on_body
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

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
