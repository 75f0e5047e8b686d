"""What every upstream request shares: the client it goes through, the headers it carries,
and how its answer is relayed.

:class:`UpstreamSender` is the one thing the request path needs from the network: the real
:class:`~chaoskit.proxy.upstream.UpstreamClient` (pooled aiohttp) in the proxy, a scripted fake
(:class:`chaoskit.testing.FakeUpstream`) in socket-free tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.loops import HOPS_HEADER
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.upstream import HOP_BY_HOP, ResponseTooLarge, UpstreamResponse

Headers = list[tuple[str, str]]


class UpstreamSender(Protocol):
    """Sends one request upstream and buffers the whole answer (``streamable``: or returns
    with the head, the rest of the body to read from :attr:`UpstreamResponse.rest`).

    Raises :class:`~chaoskit.proxy.upstream.UpstreamFailure` when no response headers arrived
    (connect failure, reset), :class:`~chaoskit.proxy.upstream.ResponseTooLarge` when the body
    is larger than chaoskit buffers."""

    async def send(
        self, method: str, scheme: str, address: str, port: int, path: str,
        headers: Sequence[tuple[str, str]], body: bytes, connect_timeout: float,
        *, streamable: bool = False, http2: bool = False,
    ) -> UpstreamResponse: ...  # fmt: skip


#: Request headers chaoskit sets itself, so a client's own value never reaches the upstream
#: beside it (Envoy overwrites ``x-forwarded-proto`` and ``x-envoy-attempt-count``).
_REPLACED = frozenset(
    {"x-request-id", "x-envoy-attempt-count", "content-length", "x-forwarded-proto", HOPS_HEADER}
)
_NEVER_FORWARDED = HOP_BY_HOP | _REPLACED


def hop_by_hop(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    """Lower-case names never forwarded: the fixed hop-by-hop set, the headers chaoskit
    replaces, and every header the ``Connection`` header names (RFC 9110 §7.6.1)."""
    named = {
        token.strip().lower()
        for k, v in headers
        if k.lower() == "connection"
        for token in v.split(",")
        if token.strip()
    }
    return _NEVER_FORWARDED | named if named else _NEVER_FORWARDED


def upstream_headers(ex: Exchange, headers: Headers, attempt: int | None) -> Headers:
    """The request headers as sent upstream: hop-by-hop ones dropped, chaoskit's own set
    (``x-envoy-attempt-count`` only on routed attempts, not passthrough or mirrors)."""
    drop = hop_by_hop(headers)
    out = [(k, v) for k, v in headers if k.lower() not in drop]
    out.append(("x-request-id", ex.request_id))
    out.append(("x-forwarded-proto", ex.request.scheme))
    if attempt is not None:
        out.append(("x-envoy-attempt-count", str(attempt)))
    return out


def with_host(headers: Headers, authority: str) -> Headers:
    """``headers`` with exactly one ``host``: the route's authority."""
    return [(k, v) for k, v in headers if k.lower() != "host"] + [("host", authority)]


def relay(resp: UpstreamResponse, elapsed: float, length: int | None = None) -> Reply:
    """The upstream's answer as the client gets it: its own ``content-length`` for a buffered
    body (a streamed one keeps the length the upstream announced, if it did; ``length`` says
    another, for a body cut short), and Envoy's ``x-envoy-upstream-service-time``
    (milliseconds)."""
    rest = resp.rest
    if length is None:
        length = len(resp.body) if rest is None else rest.announced
    headers = [*resp.headers]
    if length is not None:
        headers.append(("content-length", str(length)))
    headers.append(("x-envoy-upstream-service-time", str(int(elapsed * 1000))))
    return Reply(
        resp.status, tuple(headers), resp.body, reason=resp.reason, local=False, stream=rest,
        trailers=resp.trailers,
    )  # fmt: skip


def too_large_note(e: ResponseTooLarge) -> str:
    """Which limit refused the body: the per-response cap, or the global body budget
    (spent by the bodies of every request in flight, :mod:`chaoskit.proxy.budget`)."""
    mib = f"{e.limit / (1024 * 1024):g} MiB"
    if e.scope == "budget":
        limit = f"that does not fit in the body budget ({mib}, held by requests in flight)"
    else:
        limit = f"larger than {mib}, the most chaoskit buffers for one response"
    return (
        f"upstream answered {e.status} with a body {limit}: refused with 500 "
        "(response_payload_too_large)"
    )
