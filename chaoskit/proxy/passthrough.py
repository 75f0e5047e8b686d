"""``ALLOW_ANY`` to a host outside the registry: Istio's ``PassthroughCluster``, the original
destination with no route policies (no timeout, no retries, no faults, no breakers).

One attempt, recorded like any other, so a record never hides where a request really went.
"""

from __future__ import annotations

from chaoskit.proxy import replies
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.forwarding import relay, too_large_note, upstream_headers
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.services import Services
from chaoskit.proxy.upstream import ResponseTooLarge, UpstreamFailure
from chaoskit.records import AttemptInFlight, AttemptOutcome, AttemptRecord
from chaoskit.routing.decision import Passthrough

#: Envoy's connect timeout for passthrough (the mesh ``connectTimeout`` default).
PASSTHROUGH_CONNECT_TIMEOUT = 10.0


async def passthrough(s: Services, ex: Exchange, p: Passthrough) -> Reply:
    ex.route_name = p.route_name
    ex.host = p.host
    ex.cluster = p.cluster_name
    headers = upstream_headers(ex, ex.headers, attempt=None)
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
            PASSTHROUGH_CONNECT_TIMEOUT, streamable=s.streaming,
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
