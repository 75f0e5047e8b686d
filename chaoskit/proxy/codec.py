"""What Envoy's HTTP codecs refuse before any routing, checked on a parsed mitmproxy request.

Requests Envoy's HTTP/1 codec would reject (invalid header characters, more than 100 headers or
60 KiB of them, an unknown HTTP version, two Host headers, an authority that is not a host and
port) are answered ``400``/``431`` with flag ``DPE`` and ``%RESPONSE_CODE_DETAILS%`` like
Envoy's (envoy/source/common/http/http1/codec_impl.cc, ``http1.*``/``http2.*`` details). A
request head that never ends is cut off earlier, while it is read
(:mod:`chaoskit.proxy.guards`): mitmproxy alone would forward the first kind and buffer the
second without limit.
"""

from __future__ import annotations

import re

from mitmproxy import http
from mitmproxy.proxy import mode_specs

from chaoskit.proxy import replies
from chaoskit.proxy.addresses import valid_authority
from chaoskit.proxy.replies import Reply

#: Envoy's defaults for request headers (``max_request_headers_kb``, ``max_headers_count``).
MAX_REQUEST_HEADERS_BYTES = 60 * 1024
MAX_REQUEST_HEADERS_COUNT = 100
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Control characters other than HTAB are not allowed in a field value (RFC 9110 §5.5).
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: A request target must be a path (origin or absolute form); no controls, spaces or ``*``.
_INVALID_PATH = re.compile(rb"[\x00-\x20\x7f]|^[^/]")
_HTTP1_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1"})


def protocol_violation(flow: http.HTTPFlow, authority: str | None = None) -> Reply | None:
    """What Envoy's codec would answer instead of routing this request, if anything.
    ``authority``: :func:`request_authority` of the flow, when the caller has it already."""
    req = flow.request
    h2 = req.http_version == "HTTP/2.0" and flow.client_conn.alpn == b"h2"
    codec = "http2" if h2 else "http1"
    if req.http_version not in _HTTP1_VERSIONS and not h2:
        return replies.downstream_protocol_error(400, "http1.codec_error")
    if not _TOKEN.fullmatch(req.data.method) or _INVALID_PATH.search(req.data.path):
        return replies.downstream_protocol_error(400, f"{codec}.codec_error")
    fields = req.headers.fields
    if len(fields) > MAX_REQUEST_HEADERS_COUNT:
        return replies.downstream_protocol_error(431, f"{codec}.too_many_headers")
    size = len(req.method) + len(req.path) + sum(len(k) + len(v) + 4 for k, v in fields)
    if size > MAX_REQUEST_HEADERS_BYTES:
        return replies.downstream_protocol_error(431, f"{codec}.headers_too_large")
    hosts = 0
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or _INVALID_VALUE.search(value):
            return replies.downstream_protocol_error(400, f"{codec}.invalid_characters")
        lower = name.lower()
        hosts += lower == b"host"
        if lower == b"content-length" and not value.strip().isdigit():
            return replies.downstream_protocol_error(400, f"{codec}.codec_error")
    if hosts > 1:  # RFC 9112 §3.2: more than one Host header is answered 400
        return replies.downstream_protocol_error(400, f"{codec}.codec_error")
    if not valid_authority(request_authority(flow) if authority is None else authority):
        return replies.downstream_protocol_error(400, "http.invalid_authority")
    return None


def request_authority(flow: http.HTTPFlow) -> str:
    """The authority a request is for. A forward proxy must take the absolute-form URL's and
    ignore ``Host`` (RFC 9112 §3.2.2); mitmproxy keeps that URL's host and port in
    ``request.host``/``port`` (it rewrites the target to origin-form), so on the forward-proxy
    listener those win, and the ``Host`` header is used only where it says the same thing (to
    keep how the client wrote it). HTTP/2's ``:authority`` and a reverse-proxy listener's
    ``Host`` are taken as they are."""
    req = flow.request
    if req.authority:
        return req.authority
    host_header = req.host_header
    if isinstance(flow.client_conn.proxy_mode, mode_specs.RegularMode) and req.host:
        host, port = req.host, req.port
        shown = f"[{host}]" if ":" in host else host
        default = 443 if req.scheme == "https" else 80
        url_authority = shown if port == default else f"{shown}:{port}"
        if host_header is not None and host_header.lower().rstrip(".") in (
            shown.lower(), f"{shown.lower()}:{port}"
        ):  # fmt: skip
            return host_header
        return url_authority
    return host_header or f"{req.host}:{req.port}"
