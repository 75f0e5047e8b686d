"""``ALLOW_ANY`` to a host outside the registry: Istio's ``PassthroughCluster``, the original
destination with no route policies (no timeout, no retries, no faults, no breakers).

One attempt, recorded like any other, so a record never hides where a request really went,
in the client's own protocol: Istio's PassthroughCluster uses the downstream protocol
(``USE_DOWNSTREAM_PROTOCOL``, ``cluster_builder.go`` ``buildDefaultPassthroughCluster``), so an
HTTP/2 or gRPC call to a host outside the registry reaches it over HTTP/2 with prior knowledge.
A gRPC call's own ``grpc-timeout`` is its only deadline: Istio's catch-all route has no
timeout and an uncapped ``grpc_timeout_header_max`` (istio/istio
``pilot/pkg/networking/core/route/route.go``, the passthrough route), so Envoy's router times
the call by its header alone (``504 UT`` when it expires, as on a routed call) and sends the
deadline on (:func:`chaoskit.routing.grpc_timeout.for_attempt`).
"""

from __future__ import annotations

import asyncio

from chaoskit.proxy import replies
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.forwarding import relay, too_large_note, upstream_headers
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.services import Services
from chaoskit.proxy.upstream import ResponseTooLarge, UpstreamFailure
from chaoskit.records import AttemptInFlight, AttemptOutcome, AttemptRecord
from chaoskit.routing.decision import Passthrough
from chaoskit.routing.grpc_timeout import final_timeout, for_attempt

#: Envoy's connect timeout for passthrough (the mesh ``connectTimeout`` default).
PASSTHROUGH_CONNECT_TIMEOUT = 10.0


async def passthrough(s: Services, ex: Exchange, p: Passthrough) -> Reply:
    req = ex.request.headers
    call = final_timeout(None, req.get("content-type"), req.get("grpc-timeout"))
    if call.timeout is None:
        return await _attempt(s, ex, p, None)
    ex.notes.append(call.note)
    ex.timeout = call.timeout
    try:
        async with asyncio.timeout(call.timeout) as timer:
            reply = await _attempt(s, ex, p, call.timeout)
        if reply.stream is not None:  # the deadline goes on over the body, as a route's
            reply.stream.deadline = timer.when()
        return reply
    except TimeoutError:
        s.stats.cluster_inc(p.cluster_name, "upstream_rq_timeout")
        ex.notes.append(f"grpc-timeout {call.timeout:g}s expired")
        ex.cut_attempt(AttemptOutcome.ROUTE_TIMEOUT, s.clock.monotonic())
        return replies.upstream_timeout()


async def _attempt(s: Services, ex: Exchange, p: Passthrough, timeout: float | None) -> Reply:
    """The one attempt; ``timeout``: a gRPC call's deadline, told to the endpoint too."""
    ex.route_name = p.route_name
    ex.host = p.host
    ex.cluster = p.cluster_name
    headers = upstream_headers(ex, ex.headers, attempt=None)
    if timeout is not None:
        headers = for_attempt(headers, timeout, None, 0.0)
    path = ex.request.path + (f"?{ex.request.query}" if ex.request.query else "")
    t0 = s.clock.monotonic()
    endpoint = ex.upstream_host = f"{p.host}:{p.port}"
    refusal, hop = s.loops.check(ex, p.host, p.port)
    if refusal is not None:
        ex.attempts.append(AttemptRecord(1, endpoint, AttemptOutcome.LOOP))
        return refusal
    ex.in_flight = AttemptInFlight(1, endpoint, t0, ())  # recorded if cut off

    def record(outcome: AttemptOutcome, status: int | None) -> None:
        ex.in_flight = None
        ex.attempts.append(AttemptRecord(1, endpoint, outcome, status, s.clock.monotonic() - t0))

    try:
        resp = await s.client.send(
            ex.request.method, "http", p.host, p.port, path, headers + hop, ex.body,
            PASSTHROUGH_CONNECT_TIMEOUT, streamable=s.streaming, http2=ex.protocol == "HTTP/2",
        )  # fmt: skip
    except UpstreamFailure as f:
        failed = AttemptOutcome.CONNECT_FAILURE if f.is_connect_failure else AttemptOutcome.RESET
        record(failed, None)
        if f.detail:
            ex.notes.append(f"passthrough to {endpoint}: {f.detail}")
        return replies.upstream_reset(f.kind, f.flag, f.transport)
    except ResponseTooLarge as e:
        record(AttemptOutcome.RESPONSE_TOO_LARGE, e.status)
        ex.notes.append(too_large_note(e))
        return replies.response_too_large()
    record(AttemptOutcome.RESPONSE, resp.status)
    return relay(resp, s.clock.monotonic() - t0)
