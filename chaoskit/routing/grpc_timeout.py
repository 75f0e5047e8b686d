"""A gRPC call's own deadline, as Istio has Envoy honour it.

Istio gives every HTTP route ``max_grpc_timeout`` = the route timeout (``0`` when the route has
none) — istio/istio ``pilot/pkg/networking/core/route/route.go`` ``setTimeout``; the catch-all
``allow_any`` route gets ``0`` (``httproute.go``). With that field set, Envoy's router
(envoy ``source/common/router/router.cc`` ``FilterUtility::finalTimeout``) takes a gRPC
request's timeout from its ``grpc-timeout`` header instead of the route's:

- the header's value, capped by the route timeout when the route has one;
- no header, a malformed one or ``0`` counts as "infinite", so the route timeout applies (and
  with no route timeout, no timeout at all).

Envoy then rewrites ``grpc-timeout`` on every attempt it sends (``setTimeoutHeaders``): the
per-try timeout if one is set (and shorter than the route's), else the route's, never more than
what is left of it — so the server knows the deadline the mesh will enforce. Envoy counts in
whole milliseconds, and so does this module.

A request is gRPC when its ``content-type`` is ``application/grpc`` or ``application/grpc+…``
(envoy ``source/common/grpc/common.cc`` ``hasGrpcContentType``; ``application/grpc-web`` is
not). The header is parsed as Envoy's ``Common::getGrpcTimeout`` does: gRPC's ``TimeoutValue
TimeoutUnit`` (PROTOCOL-HTTP2.md: at most 8 digits, units ``H M S m u n``), where Envoy's
integer parsing also allows surrounding blanks, a ``+`` and leading zeros; ``u``/``n`` round up
to the next millisecond.
"""

from __future__ import annotations

import dataclasses
import re

#: ``application/grpc``: the prefix every gRPC request's ``content-type`` starts with.
GRPC_CONTENT_TYPE = "application/grpc"
#: The largest TimeoutValue (8 digits); Envoy's ``MAX_GRPC_TIMEOUT_VALUE``.
MAX_TIMEOUT_VALUE = 99_999_999

#: One unit of the header, in nanoseconds.
_UNIT_NS = {
    "H": 3_600_000_000_000,
    "M": 60_000_000_000,
    "S": 1_000_000_000,
    "m": 1_000_000,
    "u": 1_000,
    "n": 1,
}
#: What absl::SimpleAtoi accepts (Envoy parses the value with it): ASCII blanks around, a sign.
_VALUE = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)[ \t\n\v\f\r]*")


def is_grpc(content_type: str | None) -> bool:
    """``application/grpc`` exactly, or ``application/grpc+proto`` and the like."""
    if content_type is None or not content_type.startswith(GRPC_CONTENT_TYPE):
        return False
    rest = content_type[len(GRPC_CONTENT_TYPE) :]
    return not rest or rest[0] == "+"


def parse_ms(value: str) -> int | None:
    """``grpc-timeout`` in milliseconds (``u``/``n`` rounded up), ``None`` when malformed."""
    if not value or value[-1] not in _UNIT_NS:
        return None
    m = _VALUE.fullmatch(value[:-1])
    if m is None:
        return None
    number = int(m.group(2))
    if m.group(1) == "-" and number:  # "-0" is 0 to Envoy; any other negative is refused
        return None
    if number > MAX_TIMEOUT_VALUE:
        return None
    ns = number * _UNIT_NS[value[-1]]
    return -(-ns // 1_000_000)  # ceiling: 1500u is 2 ms, as Envoy rounds


@dataclasses.dataclass(frozen=True, slots=True)
class CallTimeout:
    """The timeout of one routed request: seconds, ``None`` for none, and why."""

    timeout: float | None
    #: what the record says about it; empty when the route timeout applies as it would to
    #: any request (not gRPC, or no ``grpc-timeout`` header)
    note: str = ""


def final_timeout(route: float | None, content_type: str | None, header: str | None) -> CallTimeout:
    """The request's timeout: the route's (``None`` = none), or for a gRPC request its
    ``grpc-timeout`` capped by the route's (Envoy ``finalTimeout`` with ``max_grpc_timeout``
    = the route timeout, as Istio sets it)."""
    if not is_grpc(content_type) or header is None:
        return CallTimeout(route)
    route_ms = _ms(route)
    asked = parse_ms(header)
    if asked is None:
        return CallTimeout(route, f"grpc-timeout {header!r} is malformed: ignored, as Envoy does")
    if asked == 0:  # Envoy: 0 is "no deadline", capped like any other
        return CallTimeout(route, "grpc-timeout 0 means no deadline: the route timeout applies")
    if route_ms and asked > route_ms:
        return CallTimeout(
            route, f"grpc-timeout {header} capped by the route timeout of {_seconds(route_ms)}"
        )
    allowed = f"the route allows {_seconds(route_ms)}" if route_ms else "the route has none"
    return CallTimeout(
        asked / 1000, f"grpc-timeout {header} set the timeout to {_seconds(asked)} ({allowed})"
    )


def upstream_header(timeout: float | None, per_try: float | None, elapsed: float) -> str | None:
    """The ``grpc-timeout`` Envoy sends with an attempt ``elapsed`` seconds into the request
    (``setTimeoutHeaders``), or ``None`` when it leaves the header as the client sent it (no
    timeout at all). A per-try timeout not shorter than the route's is ignored, as Envoy does."""
    global_ms, per_try_ms = _ms(timeout), _ms(per_try)
    if global_ms and per_try_ms >= global_ms:
        per_try_ms = 0
    expected = per_try_ms or global_ms
    if not expected:
        return None
    if global_ms:
        spent = int(elapsed * 1000)
        expected = 1 if spent >= global_ms else min(expected, global_ms - spent)
    return format_ms(expected)


def format_ms(ms: int) -> str:
    """Milliseconds as a ``grpc-timeout`` value: ``m`` while it fits 8 digits, then ``S``,
    ``M``, ``H`` (truncating, as Envoy's ``toGrpcTimeout``; clipped at 99999999H)."""
    value, units = ms, "mSMH"
    unit = 0
    if value > MAX_TIMEOUT_VALUE:
        value //= 1000
        unit = 1
    while value > MAX_TIMEOUT_VALUE:
        if units[unit] == "H":
            value = MAX_TIMEOUT_VALUE
        else:
            value //= 60
            unit += 1
    return f"{value}{units[unit]}"


def _ms(seconds: float | None) -> int:
    """Seconds as Envoy's whole milliseconds; ``None`` (no timeout) is Envoy's ``0``."""
    return 0 if seconds is None else round(seconds * 1000)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}s"


def with_header(headers: list[tuple[str, str]], value: str) -> list[tuple[str, str]]:
    """``headers`` with exactly one ``grpc-timeout: value``: in the place of the client's first
    one if it sent any (gRPC asks for it before ``content-type``), else last."""
    out: list[tuple[str, str]] = []
    placed = False
    for k, v in headers:
        if k.lower() != "grpc-timeout":
            out.append((k, v))
        elif not placed:
            out.append(("grpc-timeout", value))
            placed = True
    if not placed:
        out.append(("grpc-timeout", value))
    return out


def for_attempt(
    headers: list[tuple[str, str]], timeout: float | None, per_try: float | None, elapsed: float
) -> list[tuple[str, str]]:
    """A gRPC attempt's headers: ``grpc-timeout`` as Envoy rewrites it (:func:`upstream_header`),
    or as the client sent it when there is no timeout at all."""
    value = upstream_header(timeout, per_try, elapsed)
    return headers if value is None else with_header(headers, value)
