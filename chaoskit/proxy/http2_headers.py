"""HTTP/2 header blocks: building a request's, checking a response's against Envoy's limits.

Pure (no sockets, no h2 connection), so each rule is tested on its own. The rules for what a
request may carry are the HTTP/1.1 request's (:func:`chaoskit.proxy.upstream.request_head`),
plus HTTP/2's own: lower-case names, no connection-specific headers (RFC 9113 §8.2.2). The
limits on what an upstream sends back are Envoy's defaults, the same as
:mod:`chaoskit.proxy.http1_response`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from chaoskit.proxy.http1_response import MAX_HEAD, MAX_HEADERS
from chaoskit.proxy.upstream import (  # the HTTP/1.1 request's rules are HTTP/2's too
    _TARGET_FORBIDDEN,
    _TOKEN,
    _VALUE_FORBIDDEN,
    HOP_BY_HOP,
)

Headers = tuple[tuple[str, str], ...]

#: Request headers h2 refuses on a connection (RFC 9113 §8.2.2): ``te`` is kept for ``trailers``.
_NOT_FORWARDED = (HOP_BY_HOP - {"te"}) | {"host"}
#: Envoy's limits on response headers and trailers, as failure details quote them.
LIMITS = f"{MAX_HEAD // 1024} KiB, {MAX_HEADERS} headers"


def request_header_block(
    method: str, scheme: str, authority: str, path: str, headers: Sequence[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    """The header block of a request: pseudo-headers first, then ``headers`` with names in
    lower case and without the connection-specific ones HTTP/2 forbids (``te`` only as
    ``trailers``, which gRPC needs).

    Raises :class:`ValueError` for anything RFC 9113 §8.2.1 and §8.3.1 forbid, which h2 does
    not check on what it sends: a method or name that is not a token, NUL, CR or LF in a
    value (a server that speaks HTTP/1.1 behind it would read a second header or request), a
    path that is not one, an authority with spaces or controls."""
    if _TOKEN.fullmatch(method) is None:
        raise ValueError(f"request method {method[:20]!r} is not a token")
    target = path.partition("#")[0]
    if not target.startswith("/") or _TARGET_FORBIDDEN.search(target):
        raise ValueError(f"request path {target[:50]!r} is not a path")
    if not authority or _TARGET_FORBIDDEN.search(authority):
        raise ValueError(f"authority {authority[:50]!r} is not a host")
    block = [
        (b":method", method.encode("ascii")),
        (b":scheme", scheme.encode("ascii")),
        (b":authority", authority.encode("utf-8", "surrogateescape")),
        (b":path", target.encode("utf-8", "surrogateescape")),
    ]
    for name, value in headers:
        lower = name.lower()
        if lower in _NOT_FORWARDED or (lower == "te" and value.strip().lower() != "trailers"):
            continue
        if _TOKEN.fullmatch(lower) is None:
            raise ValueError(f"header name {name[:40]!r} is not a token")
        if _VALUE_FORBIDDEN.search(value):
            raise ValueError(f"NUL, CR or LF in the value of header {name[:40]!r}")
        block.append((lower.encode("ascii"), value.strip(" \t").encode("utf-8", "surrogateescape")))
    return block


def trailer_block(trailers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The header block of a request's trailers: ``trailers`` with names in lower case,
    without pseudo-headers (never allowed in trailers, RFC 9113 §8.1) and without the
    connection-specific headers HTTP/2 forbids (``te`` too: it is a request header only).

    Raises :class:`ValueError` as :func:`request_header_block` does for a name that is not a
    token or NUL, CR or LF in a value."""
    block = []
    for name, value in trailers:
        lower = name.lower()
        if lower.startswith(":") or lower in _NOT_FORWARDED or lower == "te":
            continue
        if _TOKEN.fullmatch(lower) is None:
            raise ValueError(f"trailer name {name[:40]!r} is not a token")
        if _VALUE_FORBIDDEN.search(value):
            raise ValueError(f"NUL, CR or LF in the value of trailer {name[:40]!r}")
        block.append((lower.encode("ascii"), value.strip(" \t").encode("utf-8", "surrogateescape")))
    return block


def header_list_size(block: Sequence[tuple[bytes, bytes]]) -> int:
    """The size HTTP/2 counts for a header list (RFC 9113 §6.5.2: name, value, 32 each)."""
    return sum(len(name) + len(value) + 32 for name, value in block)


def over_limits(raw: Sequence[tuple[bytes, bytes]]) -> bool:
    """Is a received header list over Envoy's ``max_response_headers_kb``/``_count``?"""
    return len(raw) > MAX_HEADERS or header_list_size(raw) > MAX_HEAD


def decode(raw: Sequence[tuple[bytes, bytes]]) -> Headers:
    """Header names are ASCII (h2 checked them), values Latin-1 as the HTTP/1.1 reader's."""
    return tuple((bytes(k).decode("ascii", "replace"), bytes(v).decode("latin-1")) for k, v in raw)
