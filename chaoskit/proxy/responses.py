"""A :class:`~chaoskit.proxy.replies.Reply` as the mitmproxy response the client gets, and the
reply of last resort when even that cannot be built."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus

from mitmproxy import http

from chaoskit.proxy.replies import Reply
from chaoskit.routing.router import Listener

logger = logging.getLogger("chaoskit")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _checked_response(
    status: int, reason: bytes, headers: http.Headers, body: bytes, now: float
) -> http.Response:
    return http.Response(b"HTTP/1.1", status, reason, headers, body, None, now, now)


def _unchecked_response(
    status: int, reason: bytes, headers: http.Headers, body: bytes, now: float
) -> http.Response:
    """``http.Response(...)`` without the field type checks mitmproxy runs only ``if
    __debug__`` (``MessageData.__post_init__``): every argument here is built by the core with
    the right type, and the checks cost about 3 % of the proxy's CPU under load."""
    data = http.ResponseData.__new__(http.ResponseData)
    data.http_version = b"HTTP/1.1"
    data.status_code = status
    data.reason = reason
    data.headers = headers
    data.content = body
    data.trailers = None
    data.timestamp_start = now
    data.timestamp_end = now
    response = http.Response.__new__(http.Response)
    response.data = data
    return response


def _pick_response_factory() -> Callable[[int, bytes, http.Headers, bytes, float], http.Response]:
    """The unchecked factory only if it builds exactly what mitmproxy's constructor builds (a
    future mitmproxy with more response state falls back to the constructor)."""
    sample = (503, b"Service Unavailable", http.Headers([(b"a", b"b")]), b"body", 1.5)
    try:
        fast, slow = _unchecked_response(*sample), _checked_response(*sample)
        if fast.get_state() == slow.get_state() and vars(fast).keys() == vars(slow).keys():
            return _unchecked_response
    except Exception:  # pragma: no cover - a mitmproxy whose internals moved
        pass
    return _checked_response  # pragma: no cover


_new_response = _pick_response_factory()


def header_bytes(text: str) -> bytes:
    """A header name or value as bytes on the wire. Relayed upstream headers were read as
    latin-1; a value copied from the request (``%REQ(x)%``) holds the client's own bytes, which
    mitmproxy decodes as UTF-8 with surrogate escapes — those go back out as they came in."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").translate(None, b"\r\n\0")


def to_response(flow: http.HTTPFlow, reply: Reply, listener: Listener) -> http.Response:
    """The response for ``flow``: Envoy's ``server`` header (``envoy`` on the sidecar,
    ``istio-envoy`` on a gateway) and ``connection: close`` when either side ends the
    connection."""
    server = b"envoy" if listener.is_mesh else b"istio-envoy"
    headers = [
        (header_bytes(k), header_bytes(v)) for k, v in reply.headers if k.lower() != "server"
    ]
    headers.append((b"server", server))
    closes = reply.cut or "close" in flow.request.headers.get("connection", "").lower()
    if reply.stream is not None and reply.stream.announced is None:
        # a body of unknown length: chunked to an HTTP/1.1 client (mitmproxy frames HTTP/2
        # itself), delimited by the close for HTTP/1.0
        if flow.request.http_version == "HTTP/1.0":
            closes = True
        else:
            headers.append((b"transfer-encoding", b"chunked"))
    if closes and not any(k.lower() == b"connection" for k, _ in headers):
        headers.append((b"connection", b"close"))
    reason = (reply.reason or _phrase(reply.status)).encode("latin-1", "replace")
    now = flow.request.timestamp_end or flow.request.timestamp_start
    response = _new_response(reply.status, reason, http.Headers(headers), reply.body, now)
    if reply.trailers and reply.stream is None and flow.request.http_version == "HTTP/2.0":
        # HTTP/1.1 trailers would need the client's ``te: trailers`` and a chunked body: dropped,
        # as a streamed reply's are (its stream brings its own: response_stream.BodyTrailers)
        response.trailers = http.Headers(
            [(header_bytes(k), header_bytes(v)) for k, v in reply.trailers]
        )
    return response


#: The reply of last resort: fixed bytes, nothing from the request, so building it cannot fail.
_LAST_RESORT_BODY = b"chaoskit internal error"


def fail_closed(flow: http.HTTPFlow) -> None:
    """Answer 500 without touching anything the client sent; if even that fails, drop the
    connection. Either way mitmproxy has nothing left to forward."""
    try:
        headers = http.Headers(
            [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(_LAST_RESORT_BODY)).encode()),
                (b"x-chaoskit-error", b"core-error"),
                (b"server", b"envoy"),
                (b"connection", b"close"),
            ]
        )
        now = flow.request.timestamp_start
        reason = b"Internal Server Error"
        flow.response = _new_response(500, reason, headers, _LAST_RESORT_BODY, now)
    except Exception:
        logger.exception("chaoskit could not answer; dropping the connection")
        flow.kill()
