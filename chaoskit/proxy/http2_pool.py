"""HTTP/2 connections to endpoints, lending out streams: the pool behind ``protocol: HTTP2|GRPC``.

One connection per endpoint carries every stream it can (HTTP/2's point, and Envoy's HTTP/2
pool, ``source/common/http/conn_pool_base.cc``): another is opened only while every open one is
at the peer's ``SETTINGS_MAX_CONCURRENT_STREAMS`` or going away, up to
:data:`MAX_CONNECTIONS_PER_ENDPOINT`; past that a stream waits for a slot (the caller's
timeouts bound the wait). Only one connection per endpoint is being opened at a time, and
every stream that needs one waits for it, so a burst opens one connection, not one each.

``http`` endpoints get HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3); ``https`` ones TLS
offering ALPN ``h2`` only, without verification as the HTTP/1.1 pool: a server that does not
select ``h2`` is a connection failure saying so. A connection counts as open once the peer's
SETTINGS arrived (its limits are known then), within the connect timeout; a peer that answers
with something that is not HTTP/2 is a protocol error (Envoy's ``UPE``). Sockets are opened by
:class:`~chaoskit.proxy.dialer.Dialer`, so loop detection knows them. Idle connections are
closed (with a GOAWAY) after :data:`IDLE_TIMEOUT`, as the HTTP/1.1 pool's.

One exchange, streamed both ways::

    stream = await pool.open_stream(("http", "10.0.0.7", 50051), connect_timeout)
    async with stream:  # resets the stream if it is left before its end
        await stream.send_headers("POST", "http", "svc:50051", "/pkg.Svc/Call", headers, False)
        await stream.send_data(body, end_stream=True)
        status, response_headers = await stream.response_headers()
        while chunk := await stream.read():
            ...
    grpc_status = dict(stream.trailers or ()).get("grpc-status")
"""

from __future__ import annotations

import asyncio
import time

from chaoskit.proxy.dialer import ConnectFailed, Dialer
from chaoskit.proxy.http2_connection import Http2Connection, Key
from chaoskit.proxy.http2_errors import REFUSED, TERMINATION
from chaoskit.proxy.http2_stream import Http2Stream
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.proxy.upstream import UpstreamFailure

#: Seconds an HTTP/2 connection without streams is kept.
IDLE_TIMEOUT = 30.0
#: Connections kept open to one endpoint at most.
MAX_CONNECTIONS_PER_ENDPOINT = 8

_CONNECT_FAILURE = "connection failure"


class Http2Pool:
    """Connections by endpoint. Create, use and close it on the proxy loop."""

    def __init__(self, own_sockets: OwnSockets, dialer: Dialer | None = None) -> None:
        self._dialer = dialer if dialer is not None else Dialer(own_sockets)
        self._conns: dict[Key, list[Http2Connection]] = {}
        self._connecting: dict[Key, asyncio.Task[Http2Connection]] = {}
        self._waiters: dict[Key, list[asyncio.Future[None]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        tasks = [t for t in (sweeper, *self._connecting.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conns in list(self._conns.values()):
            for conn in list(conns):
                conn.close()
        self._conns.clear()

    @property
    def connections(self) -> int:
        """Open connections, all endpoints together."""
        return sum(len(conns) for conns in self._conns.values())

    async def open_stream(self, key: Key, connect_timeout: float | None) -> Http2Stream:
        """A stream on a connection to ``key`` (``(scheme, address, port)``), opening one if
        none can take it. ``connect_timeout`` ``None``: no limit on connecting. Raises
        :class:`~chaoskit.proxy.upstream.UpstreamFailure`: ``connection failure`` (UF), or
        ``protocol error`` (UPE) for a peer that does not speak HTTP/2."""
        while True:
            conns = self._conns.get(key, [])
            for conn in conns:
                if conn.can_open():
                    return conn.open_stream()
            pending = self._connecting.get(key)
            if pending is None and len(conns) < MAX_CONNECTIONS_PER_ENDPOINT:
                pending = asyncio.get_running_loop().create_task(
                    self._connect(key, connect_timeout)
                )
                pending.add_done_callback(_retrieve)
                self._connecting[key] = pending
            if pending is not None:
                conn = await asyncio.shield(pending)  # another opener gone must not end it
                if conn.goaway is not None or conn.closed:
                    # refused before its first stream: fail, as Envoy's pool fails the streams
                    # pending on it, instead of reconnecting in a loop until a timeout
                    raise _unusable(conn)
                continue
            await self._wait(key)

    async def _connect(self, key: Key, timeout: float | None) -> Http2Connection:
        scheme, address, port = key
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        conn = Http2Connection(key, self._changed)
        try:
            alpn = ("h2",) if scheme == "https" else ()
            transport = await self._dialer.connect(key, timeout, lambda: conn, alpn)
            if alpn:
                ssl_object = transport.get_extra_info("ssl_object")
                chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
                if chosen != "h2":
                    conn.close(abort=True)
                    raise ConnectFailed(
                        None,
                        f"TLS with {address}:{port}: the server did not select HTTP/2 by ALPN "
                        f"(offered h2, it chose {chosen or 'none'})",
                    )
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                async with asyncio.timeout(left):
                    await conn.ready()
            except TimeoutError:
                conn.close(abort=True)
                raise ConnectFailed(
                    "connect timeout", f"no HTTP/2 SETTINGS from {address}:{port} in time"
                ) from None
        except ConnectFailed as e:
            raise UpstreamFailure(_CONNECT_FAILURE, "UF", e.transport, e.detail) from None
        except BaseException:
            conn.close(abort=True)
            raise
        finally:
            self._connecting.pop(key, None)
        self._conns.setdefault(key, []).append(conn)
        return conn

    def _changed(self, conn: Http2Connection) -> None:
        """A connection may take more streams, or none any more: wake the streams waiting."""
        if conn.going_away and not conn.active:
            conn.close()
        if conn.closed:
            conns = self._conns.get(conn.key)
            if conns is not None and conn in conns:
                conns.remove(conn)
                if not conns:
                    del self._conns[conn.key]
        waiters = self._waiters.pop(conn.key, None)
        for future in waiters or ():
            if not future.done():
                future.set_result(None)

    async def _wait(self, key: Key) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        try:
            await future
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None and future in waiters:
                waiters.remove(future)

    async def _sweep(self) -> None:
        """Close connections without streams for longer than :data:`IDLE_TIMEOUT`."""
        while True:
            await asyncio.sleep(IDLE_TIMEOUT / 3)
            cutoff = time.monotonic() - IDLE_TIMEOUT
            for conns in list(self._conns.values()):
                for conn in list(conns):
                    if not conn.active and conn.idle_since < cutoff:
                        conn.close()
                        self._changed(conn)


def _unusable(conn: Http2Connection) -> UpstreamFailure:
    if conn.goaway is not None:
        return UpstreamFailure(REFUSED, "UR", detail=f"{conn.goaway} before any stream")
    return conn.failure or UpstreamFailure(TERMINATION, "UC", detail="closed before any stream")


def _retrieve(task: asyncio.Task[Http2Connection]) -> None:
    """A connect whose openers all went away still ends: its failure is nobody's to log."""
    if not task.cancelled():
        task.exception()
