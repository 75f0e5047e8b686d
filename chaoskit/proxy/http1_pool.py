"""Keep-alive HTTP/1.1 connections to endpoints: opening, one exchange at a time, reuse.

Why our own and not aiohttp's: the request path needs one thing from a client — bytes out, one
buffered response back, failures named the way Envoy names them — and aiohttp's general-purpose
request machinery (URL objects, cookie and redirect handling, tracing, a response object per
request) was the largest share of chaoskit's own cost per request (docs/performance.md). Envoy
likewise owns its upstream codec (``source/common/http/codec_client.cc``) and connection pool
(``conn_pool_base.cc``). Opening a connection (DNS, own sockets, TLS) is
:mod:`chaoskit.proxy.dialer`'s, shared with the HTTP/2 pool.

Bounded like every table in the proxy: idle connections per endpoint and in all, and idle ones
are closed after :data:`IDLE_TIMEOUT` (Envoy's upstream ``idle_timeout`` is 1 h; 30 s keeps fewer
descriptors on a laptop and is what aiohttp, used before, kept).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

from chaoskit.proxy.dialer import ConnectFailed, Dialer
from chaoskit.proxy.http1_connection import Http1Connection, Key
from chaoskit.proxy.own_sockets import OwnSockets

__all__ = ["ConnectFailed", "Http1Pool"]  # ConnectFailed: raised here, named by its callers

#: Seconds an idle keep-alive connection is kept.
IDLE_TIMEOUT = 30.0
#: Idle connections kept per endpoint, and in all; more are closed when released.
MAX_IDLE_PER_ENDPOINT = 256
MAX_IDLE = 4096


class Http1Pool:
    """Idle connections by endpoint, most recently used first. Used on the proxy loop only."""

    def __init__(self, own_sockets: OwnSockets) -> None:
        self._idle: dict[Key, collections.deque[Http1Connection]] = {}
        self._idle_count = 0
        self._dialer = Dialer(own_sockets)
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        for stack in self._idle.values():
            for conn in stack:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    @property
    def idle(self) -> int:
        return self._idle_count

    async def acquire(self, key: Key, connect_timeout: float | None) -> Http1Connection:
        """A live idle connection to ``key``, or a new one. Raises :class:`ConnectFailed`."""
        stack = self._idle.get(key)
        while stack:
            conn = stack.pop()
            self._idle_count -= 1
            if not stack:
                del self._idle[key]
            transport = conn.transport
            if not conn.closed and transport is not None and not transport.is_closing():
                return conn
        return await self._connect(key, connect_timeout)

    def release(self, conn: Http1Connection, reusable: bool) -> None:
        """Give back a connection after its exchange; kept only if it can carry another."""
        conn.release()
        transport = conn.transport
        if (
            not reusable
            or conn.closed
            or transport is None
            or transport.get_write_buffer_size()  # answered before the request was all sent
            or self._idle_count >= MAX_IDLE
        ):
            conn.close()
            return
        stack = self._idle.get(conn.key)
        if stack is None:
            stack = self._idle[conn.key] = collections.deque()
        elif len(stack) >= MAX_IDLE_PER_ENDPOINT:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        stack.append(conn)
        self._idle_count += 1

    async def _connect(self, key: Key, timeout: float | None) -> Http1Connection:
        conn = Http1Connection(key)
        await self._dialer.connect(key, timeout, lambda: conn)
        return conn

    async def _sweep(self) -> None:
        """Close connections idle longer than :data:`IDLE_TIMEOUT` (oldest are at the left)."""
        while True:
            await asyncio.sleep(IDLE_TIMEOUT / 3)
            cutoff = time.monotonic() - IDLE_TIMEOUT
            for key in list(self._idle):
                stack = self._idle[key]
                while stack and (stack[0].idle_since < cutoff or stack[0].closed):
                    stack.popleft().close()
                    self._idle_count -= 1
                if not stack:
                    del self._idle[key]
