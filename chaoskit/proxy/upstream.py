"""Sending one attempt upstream over a pooled keep-alive HTTP/1.1 connection.

Why not mitmproxy's own forwarding: per-try timeouts, retries to another endpoint and connect
timeouts need the request in our hands (mitmproxy's HttpStream forwards a flow once, after its
request hook, with no retry or per-try deadline). One pool (:mod:`chaoskit.proxy.http1_pool`)
is shared by every client connection, so connections to endpoints are reused across clients.

Failures are classified the way Envoy names them, because retry conditions (``connect-failure``,
``reset``) and the local reply text depend on it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chaoskit.proxy.budget import ALWAYS_FITS, Holding, current_holding
from chaoskit.proxy.http1_connection import ConnectionLost
from chaoskit.proxy.http1_pool import ConnectFailed, Http1Pool
from chaoskit.proxy.http1_response import Head, ParseError, ResponseParser
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.proxy.replies import BodyStream
from chaoskit.proxy.upstream_body import UpstreamBody

if TYPE_CHECKING:
    from chaoskit.proxy.http2_pool import Http2Pool

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
    #: the rest of a body that was still arriving with the head (``body`` is what came with
    #: it): read it through, or close it
    rest: BodyStream | None = None
    #: the trailers of a whole HTTP/2 body (gRPC's ``grpc-status``); a streamed body has its
    #: own (``rest.trailers``), HTTP/1.1 ones are dropped (Envoy's default)
    trailers: tuple[tuple[str, str], ...] = ()


class BodyGuard:
    """Bounds one response body: :data:`MAX_RESPONSE_BODY`, and what the running flow may still
    take of the global body budget (:func:`chaoskit.proxy.budget.current_holding`). An announced
    body is reserved when the head arrives, before any of it is read; an unannounced one piece
    by piece as it arrives; one of at most :data:`~chaoskit.proxy.budget.ALWAYS_FITS` bytes
    always fits. What is reserved stays with the flow until it ends (the body lives on in its
    reply)."""

    __slots__ = ("holding",)

    def __init__(self, holding: Holding | None) -> None:
        self.holding = holding

    def on_head(self, head: Head) -> None:
        announced = head.length
        if announced is None:
            return
        if announced > MAX_RESPONSE_BODY:
            raise ResponseTooLarge(head.status, MAX_RESPONSE_BODY)
        holding = self.holding
        if holding is not None and not holding.take(announced, force=announced <= ALWAYS_FITS):
            raise ResponseTooLarge(head.status, holding.budget.total, BUDGET_SCOPE)

    def on_body(self, head: Head, added: int, size: int) -> None:
        if head.length is not None:
            return  # reserved whole with the head
        if size > MAX_RESPONSE_BODY:
            raise ResponseTooLarge(head.status, MAX_RESPONSE_BODY)
        holding = self.holding
        if holding is not None and not holding.take(added, force=size <= ALWAYS_FITS):
            raise ResponseTooLarge(head.status, holding.budget.total, BUDGET_SCOPE)


class UpstreamClient:
    """Owns the connection pool; create it on the proxy loop and close it there."""

    def __init__(self) -> None:
        self._pool: Http1Pool | None = None
        self._h2: Http2Pool | None = None

    @property
    def own_sockets(self) -> OwnSockets:
        """Local addresses of every connection this client opened (loop detection)."""
        own: OwnSockets | None = getattr(self, "_own_sockets", None)
        if own is None:
            own = self._own_sockets = OwnSockets()
        return own

    @property
    def idle_connections(self) -> int:
        return self._pool.idle if self._pool is not None else 0

    async def start(self) -> None:
        if self._pool is None:
            self._pool = Http1Pool(self.own_sockets)
            self._pool.start()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._h2 is not None:
            h2, self._h2 = self._h2, None
            await h2.close()

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
        *,
        streamable: bool = False,
        http2: bool = False,
    ) -> UpstreamResponse:
        """One HTTP/1.1 exchange (``http2``: an HTTP/2 one); raises :class:`UpstreamFailure`
        when no response arrived. ``connect_timeout`` ``None``: no limit on connecting.
        ``streamable``: a body still arriving with the head comes as
        :attr:`UpstreamResponse.rest`, not buffered."""
        if http2:
            return await self._send_h2(
                method, scheme, address, port, path, headers, body, connect_timeout, streamable
            )
        if self._pool is None:
            await self.start()
        pool = self._pool
        assert pool is not None
        try:
            request, keep_alive = request_head(method, address, port, path, headers, len(body))
        except ValueError as e:
            detail = f"{type(e).__name__}: {e}"[:300]
            raise UpstreamFailure("protocol error", "UPE", detail=detail) from None
        try:
            conn = await pool.acquire((scheme, address, port), connect_timeout)
        except ConnectFailed as e:
            raise UpstreamFailure("connection failure", "UF", e.transport, e.detail) from None
        parser = ResponseParser(head_request=method == "HEAD")
        guard = BodyGuard(current_holding())
        reusable = False
        streaming = False
        try:
            streaming = await conn.exchange(
                request, body, parser, guard.on_head, guard.on_body, streamable=streamable
            )
            reusable = keep_alive and parser.keep_alive
        except ConnectionLost:
            raise UpstreamFailure("connection termination", "UC") from None
        except ParseError as e:
            raise UpstreamFailure("protocol error", "UPE", detail=str(e)[:300]) from None
        finally:
            # an exchange cut off (a timeout, the client leaving) closes the connection
            if not streaming:
                pool.release(conn, reusable)
        head = parser.head
        assert head is not None
        out = []
        for name, value in head.headers:
            lower = name.lower()
            if lower not in HOP_BY_HOP and lower != "content-length":
                out.append((name, value))
        if streaming:
            rest = UpstreamBody(conn, pool, parser, keep_alive)
            return UpstreamResponse(head.status, head.reason, tuple(out), b"", rest)
        return UpstreamResponse(head.status, head.reason, tuple(out), parser.body())

    async def _send_h2(
        self, method: str, scheme: str, address: str, port: int, path: str,
        headers: Sequence[tuple[str, str]], body: bytes, connect_timeout: float | None,
        streamable: bool,
    ) -> UpstreamResponse:  # fmt: skip
        # imported here: the HTTP/2 modules use this module's failure types
        from chaoskit.proxy.http2_pool import Http2Pool  # noqa: PLC0415
        from chaoskit.proxy.upstream_h2 import send_h2  # noqa: PLC0415

        if self._h2 is None:
            self._h2 = Http2Pool(self.own_sockets)
            self._h2.start()
        return await send_h2(
            self._h2, method, scheme, address, port, path, headers, body, connect_timeout,
            streamable=streamable,
        )  # fmt: skip


#: Request methods that carry ``content-length: 0`` without a body (RFC 9110 §8.6: a
#: user agent should send it where a body is expected).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A host as the address of an endpoint: a name or an IP literal, nothing that could carry
#: a path, a query or credentials into the request (``127.0.0.1#.x.test`` is not a host).
_HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+(%[A-Za-z0-9._~-]+)?\]|[0-9A-Fa-f:.]+")
_TARGET_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")


def request_head(
    method: str, address: str, port: int, path: str,
    headers: Sequence[tuple[str, str]], body_length: int,
) -> tuple[bytes, bool]:  # fmt: skip
    """The request line and headers of one attempt, as bytes on the wire, and whether the
    connection may carry another request after it (not when it says ``connection: close``).

    Raises :class:`ValueError` for anything that would not be one well-formed request: a method
    or header name that is not a token, a control character in a value, a target that is not a
    path, an address that is not a host. Headers are sent as given (names' case kept), after a
    ``host`` when the caller gave none, and with ``content-length`` for the body."""
    if _TOKEN.fullmatch(method) is None:
        raise ValueError(f"request method {method[:20]!r} is not a token")
    if _HOST.fullmatch(address) is None:
        raise ValueError(f"upstream address {address[:50]!r} is not a host")
    target = path.partition("#")[0]
    if not target.startswith("/") or _TARGET_FORBIDDEN.search(target):
        raise ValueError(f"request target {target[:50]!r} is not a path")
    lines = [f"{method} {target} HTTP/1.1"]
    has_host = False
    keep_alive = True
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"header name {name[:40]!r} is not a token")
        if _VALUE_FORBIDDEN.search(value):
            raise ValueError(f"control character in the value of header {name[:40]!r}")
        lower = name.lower()
        if lower == "host":
            has_host = True
        elif lower == "connection" and "close" in value.lower():
            keep_alive = False
        lines.append(f"{name}: {value}")
    if not has_host:
        lines.append(f"host: {address}:{port}")
    if body_length or method in _BODY_METHODS:
        lines.append(f"content-length: {body_length}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape"), keep_alive
