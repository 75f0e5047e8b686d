"""Sending one attempt upstream through a pooled aiohttp session.

Why aiohttp and not mitmproxy's own forwarding: per-try timeouts, retries to another endpoint and
connect timeouts need the request in our hands (mitmproxy's HttpStream forwards a flow once,
after its request hook, with no retry or per-try deadline). One session is shared by
every client connection, so keep-alive connections to endpoints are pooled across clients.

Failures are classified the way Envoy names them, because retry conditions (``connect-failure``,
``reset``) and the local reply text depend on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import functools
import io
import socket
from collections.abc import Sequence

import aiohttp
import yarl

from chaoskit.proxy.budget import ALWAYS_FITS, current_holding
from chaoskit.proxy.own_sockets import OwnSockets

#: Hop-by-hop headers never forwarded (RFC 9110 §7.6.1, plus proxy credentials).
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
        "upgrade", "proxy-authorization", "proxy-authenticate",
    }
)  # fmt: skip
#: Largest upstream body buffered. A bigger one is refused (Envoy's
#: ``response_payload_too_large``) instead of growing memory: when ``content-length`` announces
#: it, before any of it is read; otherwise as soon as this much has arrived.
MAX_RESPONSE_BODY = 64 * 1024 * 1024
#: :attr:`ResponseTooLarge.scope` of a body refused because the global body budget was spent.
BUDGET_SCOPE = "budget"
#: Chunk size for bodies without ``content-length`` (each is reserved as it arrives).
_CHUNK = 65536


class UpstreamFailure(Exception):
    """An attempt that produced no response headers.

    ``kind`` is Envoy's reset reason: ``connection failure`` (flag UF, retried by
    ``connect-failure``), ``connection termination`` (UC), ``protocol error`` (UPE), ``overflow``.
    """

    def __init__(
        self, kind: str, flag: str, transport: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(f"{kind}" + (f" ({transport})" if transport else ""))
        self.kind = kind
        self.flag = flag
        #: Envoy's transport failure reason: part of the client's reply body
        self.transport = transport
        #: what went wrong in chaoskit's terms: for the record only, never for the client
        self.detail = detail

    @property
    def is_connect_failure(self) -> bool:
        return self.kind == "connection failure"


class ResponseTooLarge(Exception):
    """The upstream answered (``status``), but its body is larger than chaoskit buffers.

    Not an :class:`UpstreamFailure`: the upstream did respond, so retry policy and outlier
    detection see its status; the client gets Envoy's ``response_payload_too_large`` reply.
    """

    def __init__(self, status: int, limit: int, scope: str = "response") -> None:
        mib = f"{limit / (1024 * 1024):g} MiB"
        if scope == BUDGET_SCOPE:
            text = f"upstream response body does not fit in the proxy's body budget ({mib})"
        else:
            text = f"upstream response body larger than {mib}"
        super().__init__(text)
        self.status = status
        self.limit = limit
        #: which limit refused it: ``"response"`` (:data:`MAX_RESPONSE_BODY`, per response) or
        #: ``"budget"`` (the global body budget, :mod:`chaoskit.proxy.budget`, was spent)
        self.scope = scope


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _errno_text(e: BaseException) -> str | None:
    """Envoy's transport failure text for a refused connect: ``delayed connect error: 111``."""
    code = getattr(e, "errno", None)
    inner = getattr(e, "os_error", None)
    if code is None and inner is not None:
        code = getattr(inner, "errno", None)
    if code in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET):
        return f"delayed connect error: {code}"
    return None


class UpstreamClient:
    """Owns the aiohttp session; create it on the proxy loop and close it there."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    @property
    def own_sockets(self) -> OwnSockets:
        """Local addresses of every connection this client opened (loop detection)."""
        own: OwnSockets | None = getattr(self, "_own_sockets", None)
        if own is None:
            own = self._own_sockets = OwnSockets()
        return own

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, keepalive_timeout=30, enable_cleanup_closed=True, family=socket.AF_UNSPEC,
                socket_factory=self.own_sockets.socket_factory,
            )  # fmt: skip
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(
        self,
        method: str,
        scheme: str,
        address: str,
        port: int,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        connect_timeout: float | None,
    ) -> UpstreamResponse:
        """One HTTP/1.1 exchange; raises :class:`UpstreamFailure` when no response arrived.
        ``connect_timeout`` ``None``: no limit on connecting."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        timeout = _connect_timeout(connect_timeout)
        try:
            url = upstream_url(scheme, address, port, path)
            async with self._session.request(
                method,
                url,
                headers=list(headers),
                data=_payload(body),
                allow_redirects=False,
                timeout=timeout,
                ssl=False,
            ) as resp:
                # Leaving the block unread closes the connection: nothing more is received.
                data = await _read_body(resp)
                out = []
                for k, v in resp.raw_headers:
                    name = k.decode("latin-1")
                    lower = name.lower()
                    if lower not in HOP_BY_HOP and lower != "content-length":
                        out.append((name, v.decode("latin-1")))
                return UpstreamResponse(resp.status, resp.reason or "", tuple(out), data)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            transport = _errno_text(e) or ("connect timeout" if _is_timeout(e) else None)
            raise UpstreamFailure("connection failure", "UF", transport) from None
        except aiohttp.ServerDisconnectedError:
            raise UpstreamFailure("connection termination", "UC") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientOSError) as e:
            raise UpstreamFailure("connection termination", "UC", _errno_text(e)) from None
        except aiohttp.ClientResponseError:
            raise UpstreamFailure("protocol error", "UPE") from None
        except (aiohttp.InvalidURL, ValueError, aiohttp.ClientError) as e:
            detail = f"{type(e).__name__}: {e}"[:300]
            raise UpstreamFailure("protocol error", "UPE", detail=detail) from None


def upstream_url(scheme: str, address: str, port: int, path: str) -> yarl.URL:
    """The URL of one attempt. The address is only ever a host: it is checked as one by
    yarl (``127.0.0.1#.x.test`` or ``127.0.0.1/secret?.x.test`` raise ``ValueError`` instead
    of becoming host ``127.0.0.1`` plus the rest), and the client's path is appended to that
    validated origin as written (a fragment, which HTTP never sends, is dropped)."""
    target = path.partition("#")[0]
    if not target.startswith("/"):
        raise ValueError(f"request target {target[:50]!r} is not a path")
    return yarl.URL(f"{_origin(scheme, address, port)}{target}", encoded=True)


@functools.lru_cache(maxsize=1024)
def _origin(scheme: str, address: str, port: int) -> str:
    return str(yarl.URL.build(scheme=scheme, host=address.strip("[]"), port=port))


#: aiohttp warns (ResourceWarning) for a raw ``bytes`` body over 1 MiB — an error in a test
#: suite with ``filterwarnings = error``, which then failed the attempt. A file-like body of
#: known size is sent the same way (with ``content-length``), in chunks, without the warning.
_LARGE_BODY = 1 << 20


def _payload(body: bytes) -> bytes | io.BytesIO | None:
    if not body:
        return None
    return io.BytesIO(body) if len(body) > _LARGE_BODY else body


@functools.lru_cache(maxsize=64)  # one per distinct connectTimeout, not one per request
def _connect_timeout(seconds: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds)


def _is_timeout(e: BaseException) -> bool:
    return isinstance(e, asyncio.TimeoutError | aiohttp.ConnectionTimeoutError)


async def _read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The whole body, within :data:`MAX_RESPONSE_BODY` and within what the running flow may
    still take of the global body budget (:func:`chaoskit.proxy.budget.current_holding`): an
    announced body is reserved before any of it is read, an unannounced one chunk by chunk,
    and one of at most :data:`~chaoskit.proxy.budget.ALWAYS_FITS` bytes always fits. What is
    reserved stays with the flow until it ends (the body lives on in its reply)."""
    limit = MAX_RESPONSE_BODY
    holding = current_holding()
    announced = resp.content_length
    if announced is not None:
        if announced > limit:
            raise ResponseTooLarge(resp.status, limit)
        small = announced <= ALWAYS_FITS
        if holding is not None and not holding.take(announced, force=small):
            raise ResponseTooLarge(resp.status, holding.budget.total, BUDGET_SCOPE)
        return await resp.read()  # announced and within the limit: one read, no chunk loop
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(resp.status, limit)
        if holding is not None and not holding.take(len(chunk), force=size <= ALWAYS_FITS):
            raise ResponseTooLarge(resp.status, holding.budget.total, BUDGET_SCOPE)
        chunks.append(chunk)
    return b"".join(chunks)
