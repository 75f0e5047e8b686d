"""Envoy's local replies, byte for byte where Envoy documents them (Envoy's docs
``http_conn_man/local_reply.rst``, ``router_filter.rst`` and ``response_code_details.rst``).

A :class:`Reply` is what the pipeline hands back for the client: status, headers, body, plus the
response flags and ``%RESPONSE_CODE_DETAILS%`` for the record and the access log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from http import HTTPStatus
from typing import Protocol

from chaoskit.records import ResponseFlag

UPSTREAM_RESET_PREFIX = "upstream connect error or disconnect/reset before headers. reset reason: "


class BodyStream(Protocol):
    """A body that goes to the client as it arrives
    (:class:`~chaoskit.proxy.upstream_body.UpstreamBody`, or a test's fake)."""

    announced: int | None
    deadline: float | None
    on_end: list[Callable[[], None]]

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    flags: tuple[str, ...] = ()
    details: str = ""
    reason: str = ""
    #: True for replies chaoskit made itself (Envoy's "local reply"), False when relayed.
    local: bool = True
    #: The upstream dropped mid-response: ``body`` is only what arrived, ``content-length``
    #: announces the full size, and the client connection is closed after it.
    cut: bool = False
    #: the rest of the body, still arriving: ``body`` goes first, then this, as it comes
    stream: BodyStream | None = None
    #: the trailers of a whole body (an HTTP/2 upstream's; ``stream`` brings its own), sent to
    #: HTTP/2 clients only
    trailers: tuple[tuple[str, str], ...] = ()

    def with_headers(self, headers: list[tuple[str, str]]) -> Reply:
        return dataclasses.replace(self, headers=tuple(headers))


def local_reply(
    status: int,
    body: str | bytes = "",
    *,
    flags: tuple[str, ...] = (),
    details: str = "",
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """A reply chaoskit makes itself. Total: any body gives exactly one ``content-length`` (the
    body's) and at most one ``content-type`` (the caller's, compared case-insensitively, else
    ``text/plain`` for a non-empty body) — a directResponse brings its own."""
    data = _utf8(body) if isinstance(body, str) else body
    own = [(k, v) for k, v in headers if k.lower() != "content-length"]
    hdrs: list[tuple[str, str]] = []
    if data and not any(k.lower() == "content-type" for k, _ in own):
        hdrs.append(("content-type", "text/plain"))
    hdrs.append(("content-length", str(len(data))))
    hdrs.extend(own)
    return Reply(status, tuple(hdrs), data, flags, details)


def _utf8(text: str) -> bytes:
    """UTF-8, never raising: bytes mitmproxy smuggled in as surrogates go back out as they
    came, any other lone surrogate becomes ``?``."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def no_route() -> Reply:
    return local_reply(404, flags=(ResponseFlag.NR,), details="route_not_found")


def cluster_not_found() -> Reply:
    return local_reply(503, flags=(ResponseFlag.NC,), details="cluster_not_found")


def no_healthy_upstream() -> Reply:
    return local_reply(
        503, "no healthy upstream", flags=(ResponseFlag.UH,), details="no_healthy_upstream"
    )


def upstream_reset(reason: str, flag: str, transport_failure: str | None = None) -> Reply:
    """503 for a connection that failed or dropped before response headers arrived."""
    body = UPSTREAM_RESET_PREFIX + reason
    if transport_failure:
        body += f", transport failure reason: {transport_failure}"
    return local_reply(
        503, body, flags=(flag,), details=f"upstream_reset_before_response_started{{{reason}}}"
    )


def overflow() -> Reply:
    """Circuit-breaker overflow: never retried, and says so with ``x-envoy-overloaded``."""
    reply = upstream_reset("overflow", "UO")
    return dataclasses.replace(reply, headers=(*reply.headers, ("x-envoy-overloaded", "true")))


def upstream_timeout(per_try: bool = False) -> Reply:
    details = "upstream_per_try_timeout" if per_try else "upstream_response_timeout"
    return local_reply(504, "upstream request timeout", flags=(ResponseFlag.UT,), details=details)


def fault_abort(status: int) -> Reply:
    return local_reply(
        status, "fault filter abort", flags=(ResponseFlag.FI,), details="fault_filter_abort"
    )


def grpc_fault_abort(code: int) -> Reply:
    """The fault filter's abort for a gRPC route: HTTP 200 with the status in ``grpc-status``
    (Envoy's ``abort.grpc_status``)."""
    headers = (
        ("content-type", "application/grpc"), ("grpc-status", str(code)),
        ("grpc-message", "fault filter abort"), ("content-length", "0"),
    )  # fmt: skip
    return Reply(200, headers, b"", (ResponseFlag.FI,), "fault_filter_abort")


def client_gone() -> Reply:
    """Never sent: how the record of a request whose client disconnected ends (Envoy logs
    response code 0 with flag DC)."""
    return Reply(0, flags=(ResponseFlag.DC,), details="downstream_remote_disconnect")


def internal_error(request_id: str) -> Reply:
    """The core failed: answer (never forward untouched), and tell the client nothing about
    chaoskit's configuration or code — the cause goes to the proxy's log and the record,
    under the request id the body names."""
    body = f"chaoskit internal error; see the proxy's log for request {request_id}"
    return local_reply(
        500, body, details="chaoskit_internal_error",
        headers=(("x-chaoskit-error", "core-error"), ("x-request-id", request_id)),
    )  # fmt: skip


def response_too_large() -> Reply:
    """The upstream's body is larger than chaoskit buffers: Envoy's reply when a filter that
    must buffer a response exceeds its limit (``responseDataTooLarge``: 500, its status text,
    details ``response_payload_too_large``)."""
    return local_reply(
        500, "Internal Server Error", details="response_payload_too_large",
        headers=(("x-chaoskit-error", "response-payload-too-large"),),
    )  # fmt: skip


#: chaoskit's own response flag for a request refused because it would loop back into the
#: proxy (Envoy has no loop detection of its own, so no flag for it).
LOOP_FLAG = "LOOP"


def request_loop() -> Reply:
    """The destination is this proxy itself: refused instead of recursing (502, like the
    ``block_all`` route Istio answers for traffic it will not send anywhere)."""
    return local_reply(502, "request loop detected", flags=(LOOP_FLAG,),
                       details="request_loop_detected")  # fmt: skip


def downstream_protocol_error(status: int, details: str) -> Reply:
    """A request Envoy's HTTP/1 codec would reject (flag ``DPE``): invalid characters in a
    header, too many or too large headers, an unknown HTTP version. Envoy closes the
    connection after it; so does chaoskit."""
    return local_reply(
        status, HTTPStatus(status).phrase, flags=(ResponseFlag.DPE,), details=details,
        headers=(("connection", "close"),),
    )  # fmt: skip


#: Envoy's HTTP → gRPC status mapping for local replies to gRPC requests.
_GRPC_FOR_HTTP = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


#: What the gRPC conversion replaces (names compared lower-case): a reply must never carry two.
_GRPC_REPLACED = frozenset({"content-type", "content-length", "grpc-status", "grpc-message"})

#: Byte → its ``grpc-message`` form: gRPC's Percent-Byte-Unencoded (%x20-24 / %x26-7E) as is,
#: every other byte as ``%XX`` (PROTOCOL-HTTP2.md, "Status-Message").
_PERCENT = tuple(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in range(256))


def grpc_message(text: bytes) -> str:
    """``grpc-message`` for ``text`` (UTF-8 by gRPC's contract, but any bytes are accepted):
    percent-encoded as the gRPC spec says, so the value is printable ASCII — a newline in a
    directResponse body cannot end the header, and no character needs latin-1.

    Envoy's encoder (``Http::Utility::PercentEncoding::encode``) also escapes ``~``; both forms
    decode to the same message."""
    return "".join(map(_PERCENT.__getitem__, text))


def as_grpc(reply: Reply) -> Reply:
    """gRPC clients get HTTP 200 with ``grpc-status``/``grpc-message`` (Envoy's conversion of a
    local reply: a trailers-only response, ``grpc-message`` only for a non-empty body).

    Total: any body gives exactly one ``content-type`` and a printable-ASCII ``grpc-message``.
    """
    if not reply.local or reply.status == 200:
        return reply
    code = _GRPC_FOR_HTTP.get(reply.status, 2)
    headers = [(k, v) for k, v in reply.headers if k.lower() not in _GRPC_REPLACED]
    headers += [("content-type", "application/grpc"), ("grpc-status", str(code))]
    if reply.body:
        headers.append(("grpc-message", grpc_message(reply.body)))
    headers.append(("content-length", "0"))
    return dataclasses.replace(reply, status=200, headers=tuple(headers), body=b"")
