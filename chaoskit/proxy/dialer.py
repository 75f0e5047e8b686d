"""Opening one connection to an endpoint: the part both upstream pools share.

A name is resolved (cached for :data:`DNS_TTL`) and each address tried in turn; every socket is
created through :class:`~chaoskit.proxy.own_sockets.OwnSockets`, so loop detection knows the
proxy's own connections; TLS is originated without verification (endpoints are the user's own,
often with self-signed certificates), offering ALPN protocols when the caller asks (``h2`` for
the HTTP/2 pool). Every failure becomes :class:`ConnectFailed`, with Envoy's transport failure
reason where Envoy has one. Used by :mod:`chaoskit.proxy.http1_pool` and
:mod:`chaoskit.proxy.http2_pool`.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import functools
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from chaoskit.proxy.own_sockets import OwnSockets

#: Seconds a name's resolved addresses are reused (aiohttp's default, used before).
DNS_TTL = 10.0
MAX_DNS_ENTRIES = 1024

Key = tuple[str, str, int]  # scheme, address, port


class ConnectFailed(Exception):
    """No connection: ``transport`` is Envoy's transport failure reason, when it has one."""

    def __init__(self, transport: str | None, detail: str) -> None:
        super().__init__(detail)
        self.transport = transport
        self.detail = detail


class Dialer:
    """Connects sockets of its own to endpoints. Used on the proxy loop only."""

    def __init__(self, own_sockets: OwnSockets) -> None:
        self._own = own_sockets
        self._dns: collections.OrderedDict[tuple[str, int], tuple[float, list[Any]]] = (
            collections.OrderedDict()
        )
        self._tls: dict[tuple[str, ...], ssl.SSLContext] = {}

    async def connect(
        self,
        key: Key,
        timeout: float | None,
        protocol: Callable[[], asyncio.Protocol],
        alpn: tuple[str, ...] = (),
    ) -> asyncio.Transport:
        """A transport to ``key`` (``https``: TLS, offering ``alpn``) carrying ``protocol()``.
        ``timeout`` bounds resolving, connecting and the TLS handshake together; ``None``: no
        limit. Raises :class:`ConnectFailed`."""
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
                    tls = self._tls_context(alpn) if scheme == "https" else None
                    return await self._wrap(sock, protocol, tls, address)
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

    @staticmethod
    async def _wrap(
        sock: socket.socket, protocol: Callable[[], asyncio.Protocol],
        tls: ssl.SSLContext | None, address: str,
    ) -> asyncio.Transport:  # fmt: skip
        loop = asyncio.get_running_loop()
        try:
            if tls is not None:
                transport, _ = await loop.create_connection(
                    protocol, sock=sock, ssl=tls, server_hostname=address.strip("[]")
                )
            else:
                transport, _ = await loop.create_connection(protocol, sock=sock)
        except BaseException:
            sock.close()
            raise
        assert isinstance(transport, asyncio.Transport)
        return transport

    def _tls_context(self, alpn: tuple[str, ...]) -> ssl.SSLContext:
        """Origination without verification, as before (``ssl=False`` in aiohttp): endpoints
        are the user's own, often with self-signed certificates."""
        ctx = self._tls.get(alpn)
        if ctx is None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            self._tls[alpn] = ctx
        return ctx

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
