"""The rest of a response body still arriving from an upstream, read as it comes.

:class:`~chaoskit.proxy.upstream.UpstreamClient` hands one over with the response head when the
body was not complete with it (Envoy streams every body; chaoskit buffers the ones that arrive
whole with their head, which costs nothing, and streams the rest). It owns the pooled
connection until the body ends: a body read to its end gives the connection back for reuse,
one closed early (a route timeout, a retry, a client gone) closes it, as Envoy resets the
upstream stream.
"""

from __future__ import annotations

from collections.abc import Callable

from chaoskit.proxy.http1_connection import ConnectionLost, Http1Connection
from chaoskit.proxy.http1_pool import Http1Pool
from chaoskit.proxy.http1_response import ParseError, ResponseParser


class UpstreamBodyError(Exception):
    """The upstream broke the body off: ``flag`` is Envoy's (``UC`` connection termination,
    ``UPE`` a framing error), ``reason`` its reset reason."""

    def __init__(self, reason: str, flag: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.flag = flag
        self.detail = detail


class UpstreamBody:
    """Read with :meth:`read` until ``b""``; :meth:`close` ends it early. ``on_end`` callbacks
    run exactly once, when it ends either way (what the attempt still held: the endpoint's
    active request, the circuit breaker slot)."""

    def __init__(
        self, conn: Http1Connection, pool: Http1Pool, parser: ResponseParser, keep_alive: bool
    ) -> None:
        self._conn: Http1Connection | None = conn
        self._pool = pool
        self._parser = parser
        self._keep_alive = keep_alive
        head = parser.head
        #: the body's length when the upstream announced it (``content-length``)
        self.announced: int | None = head.length if head is not None else None
        #: ``loop.time()`` by which the route timeout ends the body (``None``: no timeout)
        self.deadline: float | None = None
        self.on_end: list[Callable[[], None]] = []

    @property
    def ended(self) -> bool:
        return self._conn is None

    async def read(self) -> bytes:
        """The next piece, ``b""`` at the end. Raises :class:`UpstreamBodyError`."""
        conn = self._conn
        if conn is None:
            return b""
        try:
            chunk = await conn.read_chunk()
        except ConnectionLost:
            self._end(reusable=False)
            raise UpstreamBodyError("connection termination", "UC") from None
        except ParseError as e:
            self._end(reusable=False)
            raise UpstreamBodyError("protocol error", "UPE", str(e)[:300]) from None
        if not chunk:
            self._end(reusable=self._keep_alive and self._parser.keep_alive)
        return chunk

    def close(self) -> None:
        """End the body before its end (idempotent): the connection is closed, not reused."""
        self._end(reusable=False)

    def _end(self, *, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._pool.release(conn, reusable)
        callbacks, self.on_end = self.on_end, []
        for callback in callbacks:
            callback()
