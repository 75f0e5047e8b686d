"""HTTP/2 WebSockets (extended ``CONNECT``, RFC 8441): refused as Istio's Envoy refuses them, and
recorded.

A client may open a WebSocket over HTTP/2 with ``:method CONNECT`` and ``:protocol websocket``,
but only after the server advertised ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` (RFC 8441 §3).
Envoy advertises it only with ``Http2ProtocolOptions.allow_connect``, which Istio sets on its
HBONE tunnel listeners, not on a sidecar's or a gateway's HTTP listeners; without it Envoy's
codec reads ``:protocol`` as an invalid header, and by default
(``override_stream_error_on_invalid_http_message`` unset) terminates the whole connection:
GOAWAY ``PROTOCOL_ERROR``. mitmproxy does not advertise the setting either, and its HTTP/2
layer answers such a request the same way (``parse_h2_request_headers`` refuses the unknown
pseudo-header; ``Http2Connection.protocol_error`` sends the GOAWAY): nothing is routed or
forwarded. What mitmproxy does not do is say so anywhere but its debug log.

The wrapper of ``Http2Server.handle_h2_event`` (patch ``http2.extended_connect``) records such
a request before mitmproxy refuses it — status 0 (nothing was answered), flag ``DPE``, Envoy's
details for an invalid header, and a note — so the access log and the records show that a client
tried, and why it got nothing. A WebSocket over HTTP/1.1 (``Upgrade: websocket``) works:
:mod:`chaoskit.proxy.websocket_handoff`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from chaoskit.proxy.replies import Reply
from chaoskit.records import ResponseFlag

logger = logging.getLogger("chaoskit")

#: Envoy's ``%RESPONSE_CODE_DETAILS%`` for a header its HTTP/2 codec refuses
#: (``Http2ResponseCodeDetailValues::invalid_http_header``).
DETAILS = "http2.invalid.header.field"
NOTE = (
    "HTTP/2 extended CONNECT (:protocol {protocol}, RFC 8441) is not supported, as in Istio "
    "(Envoy's allow_connect is off): the client's connection was closed with GOAWAY "
    "PROTOCOL_ERROR; a WebSocket over HTTP/1.1 (Upgrade: websocket) works"
)


def extended_connect(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The ``:protocol`` of a request's header block (``websocket``), or ``None`` when it has
    none (every other request, which mitmproxy handles as it does)."""
    for name, value in headers:
        if not name.startswith(b":"):
            return None  # pseudo-headers come first (RFC 9113 §8.3)
        if name == b":protocol":
            return value.decode("latin-1")
    return None


def not_answered() -> Reply:
    """Never sent: how the record of a refused extended ``CONNECT`` ends (Envoy logs response
    code 0 with flag DPE for a stream its codec refused)."""
    return Reply(0, flags=(ResponseFlag.DPE,), details=DETAILS)


def _request(headers: Sequence[tuple[bytes, bytes]]) -> Any:
    """The refused request as a mitmproxy request, for the record (its pseudo-headers read
    leniently: the point is to say what was refused)."""
    from mitmproxy import http  # noqa: PLC0415 - mitmproxy only when the patch runs
    from mitmproxy.net.http import url  # noqa: PLC0415

    pseudo = {k: v for k, v in headers if k.startswith(b":")}
    authority = pseudo.get(b":authority", b"")
    scheme = pseudo.get(b":scheme", b"https")
    try:
        host, port = url.parse_authority(authority, check=False)
    except ValueError:
        host, port = "", None
    now = time.time()
    return http.Request(
        host=host, port=port or (80 if scheme == b"http" else 443),
        method=pseudo.get(b":method", b"CONNECT"), scheme=scheme, authority=authority,
        path=pseudo.get(b":path", b"/"), http_version=b"HTTP/2.0",
        headers=http.Headers([(k, v) for k, v in headers if not k.startswith(b":")]),
        content=None, trailers=None, timestamp_start=now, timestamp_end=now,
    )  # fmt: skip


def record(context: Any, headers: Sequence[tuple[bytes, bytes]], protocol: str) -> None:
    """Record the refused request through the running proxy's enforcer (logged only when
    there is none: a mitmproxy without chaoskit's addons)."""
    from mitmproxy import ctx, http  # noqa: PLC0415

    note = NOTE.format(protocol=protocol)
    logger.info("chaoskit: %s", note)
    try:
        enforcer = ctx.master.addons.get("enforcer")
    except AttributeError:  # no master (a unit test of the layer)
        return
    if enforcer is None:
        return
    flow = http.HTTPFlow(context.client, context.server)
    flow.request = _request(headers)
    enforcer.record_unanswered(flow, not_answered(), note)


#: A wrapper: takes mitmproxy's original method, returns the method that replaces it.
Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


@functools.cache
def wrappers() -> dict[str, Wrap]:
    """The wrapper of ``Http2Server.handle_h2_event`` (see the module docstring): a request
    with ``:protocol`` is recorded, then handed to mitmproxy, which refuses it."""
    try:
        import h2.events  # noqa: PLC0415
    except ImportError:  # pragma: no cover - installed with mitmproxy
        return {}

    def wrap(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def handle_h2_event(self: Any, event: Any) -> Iterator[Any]:
            if isinstance(event, h2.events.RequestReceived):
                protocol = extended_connect(event.headers or ())
                if protocol is not None:
                    try:
                        record(self.context, event.headers, protocol)
                    except Exception:  # recording must never change what the client gets
                        logger.exception("chaoskit: could not record an extended CONNECT")
            return original(self, event)

        return handle_h2_event

    return {"handle_h2_event": wrap}
