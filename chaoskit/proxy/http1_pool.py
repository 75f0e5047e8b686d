"""Keep-alive HTTP/1.1 connections to endpoints: opening, one exchange at a time, reuse.

Why our own and not aiohttp's: the request path needs one thing from a client — bytes out, one
buffered response back, failures named the way Envoy names them — and aiohttp's general-purpose
request machinery (URL objects, cookie and redirect handling, tracing, a response object per
request) was the largest share of chaoskit's own cost per request (docs/performance.md). Envoy
likewise owns its upstream codec (``source/common/http/codec_client.cc``) and connection pool
(``conn_pool_base.cc``).

Bounded like every table in the proxy: idle connections per endpoint and in all, and idle ones
are closed after :data:`IDLE_TIMEOUT` (Envoy's upstream ``idle_timeout`` is 1 h; 30 s keeps fewer
descriptors on a laptop and is what aiohttp, used before, kept).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import socket
import ssl
import time
from typing import Any

from chaoskit.proxy.http1_connection import Http1Connection, Key
from chaoskit.proxy.own_sockets import OwnSockets

#: Seconds an idle keep-alive connection is kept.
IDLE_TIMEOUT = 30.0
#: Idle connections kept per endpoint, and in all; more are closed when released.
MAX_IDLE_PER_ENDPOINT = 256
MAX_IDLE = 4096
#: Seconds a name's resolved addresses are reused (aiohttp's default, used before).
DNS_TTL = 10.0
MAX_DNS_ENTRIES = 1024


class ConnectFailed(Exception):
    """No connection: ``transport`` is Envoy's transport failure reason, when it has one."""

    def __init__(self, transport: str | None, detail: str) -> None:
        super().__init__(detail)
        self.transport = transport
        self.detail = detail


class Http1Pool:
    """Idle connections by endpoint, most recently used first. Used on the proxy loop only."""

    def __init__(self, own_sockets: OwnSockets) -> None:
        self._own = own_sockets
        self._idle: dict[Key, collections.deque[Http1Connection]] = {}
        self._idle_count = 0
        self._dns: collections.OrderedDict[tuple[str, int], tuple[float, list[Any]]] = (
            collections.OrderedDict()
        )
        self._sweeper: asyncio.Task[None] | None = None
        self._tls: ssl.SSLContext | None = None

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
        scheme, address, port = key
        try:
            async with asyncio.timeout(timeout):
                infos = await self._resolve(address, port)
                error: OSError | None = None
                for family, type_, proto, _name, sockaddr in infos:
                    sock = self._own.socket_factory((family, type_, proto))
                    try:
                        sock.setblocking(False)
                        await asyncio.get_running_loop().sock_connect(sock, sockaddr)
                    except OSError as e:
                        sock.close()
                        error = e
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    return await self._wrap(key, sock, scheme == "https", address)
                assert error is not None
                raise error
        except TimeoutError:
            raise ConnectFailed(
                "connect timeout", f"connect to {address}:{port} timed out"
            ) from None
        except socket.gaierror as e:
            raise ConnectFailed(None, f"cannot resolve {address}: {e.strerror}") from None
        except ssl.SSLError as e:
            raise ConnectFailed(None, f"TLS handshake with {address}:{port}: {e}") from None
        except OSError as e:
            raise ConnectFailed(_errno_text(e.errno), f"connect to {address}:{port}: {e}") from None

    async def _wrap(
        self, key: Key, sock: socket.socket, tls: bool, address: str
    ) -> Http1Connection:
        loop = asyncio.get_running_loop()
        conn = Http1Connection(key)
        try:
            if tls:
                await loop.create_connection(
                    lambda: conn, sock=sock, ssl=self._tls_context(),
                    server_hostname=address.strip("[]"),
                )  # fmt: skip
            else:
                await loop.create_connection(lambda: conn, sock=sock)
        except BaseException:
            sock.close()
            raise
        return conn

    def _tls_context(self) -> ssl.SSLContext:
        """Origination without verification, as before (``ssl=False`` in aiohttp): endpoints
        are the user's own, often with self-signed certificates."""
        if self._tls is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._tls = ctx
        return self._tls

    async def _resolve(self, address: str, port: int) -> list[Any]:
        literal = _ip_literal(address)
        if literal is not None:
            return [(literal, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", _sockaddr(address, port))]
        now = time.monotonic()
        cached = self._dns.get((address, port))
        if cached is not None and now - cached[0] < DNS_TTL:
            return cached[1]
        infos = await asyncio.get_running_loop().getaddrinfo(address, port, type=socket.SOCK_STREAM)
        self._dns[(address, port)] = (now, infos)
        self._dns.move_to_end((address, port))
        while len(self._dns) > MAX_DNS_ENTRIES:
            self._dns.popitem(last=False)
        return infos

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


def _errno_text(code: int | None) -> str | None:
    """Envoy's transport failure text for a refused connect: ``delayed connect error: 111``."""
    if code in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET):
        return f"delayed connect error: {code}"
    return None


@functools.lru_cache(maxsize=1024)
def _ip_literal(address: str) -> int | None:
    """The address family of an IP literal (``[::1]`` included), ``None`` for a name."""
    host = address.strip("[]")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def _sockaddr(address: str, port: int) -> tuple[Any, ...]:
    host = address.strip("[]")
    return (host, port, 0, 0) if ":" in host else (host, port)
