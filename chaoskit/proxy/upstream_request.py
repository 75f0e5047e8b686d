"""One attempt to one endpoint: Envoy's ``UpstreamRequest``
(envoy/source/common/router/upstream_request.cc).

It sends the request with the attempt's headers, acts out the UpstreamFault plan drawn for
this endpoint (delay, abort, reset, hang, slow or damaged body), enforces the per-try timeout,
and turns whatever happened into a :class:`Reply` for the client and an :class:`Outcome` for
the retry state. It also keeps the books: the attempt's record, the cluster's counters, what
outlier detection hears, and the endpoint's active-request counts.
"""

from __future__ import annotations

import asyncio
import dataclasses

from chaoskit.clusters import Cluster
from chaoskit.faults import AttemptPlan, plan_attempt
from chaoskit.faults.plan import NO_FAULT
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.proxy import replies
from chaoskit.proxy.body_faults import shape_whole, stream_shaped
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.forwarding import Headers, relay, too_large_note, upstream_headers, with_host
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.services import Services
from chaoskit.proxy.upstream import ResponseTooLarge, UpstreamFailure, UpstreamResponse
from chaoskit.records import AttemptInFlight, AttemptOutcome, AttemptRecord, ResponseFlag
from chaoskit.resilience.outlier_detection import Event
from chaoskit.resilience.retry import Outcome, RetryPolicy
from chaoskit.routing.decision import Forward

#: status → its two counter names (``upstream_rq_503``, ``upstream_rq_5xx``), built once each
_STATUS_STATS: dict[int, tuple[str, str]] = {}


class UpstreamRequest:
    """Makes attempts; one instance serves every request of a pipeline."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def attempt(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, host: UpstreamHost, number: int,
        policy: RetryPolicy | None, route_headers: Headers,
    ) -> tuple[Reply, Outcome]:  # fmt: skip
        s = self.s
        headers = with_host(upstream_headers(ex, route_headers, number), fwd.authority)
        refusal, hop = s.loops.check(ex, host.address, host.port)
        if refusal is not None:
            ex.upstream_host = host.key
            ex.attempts.append(AttemptRecord(number, host.key, AttemptOutcome.LOOP))
            return refusal, Outcome(AttemptOutcome.LOOP)
        headers += hop
        if fwd.original_path is not None:
            headers.append(("x-envoy-original-path", fwd.original_path))
        if cluster.close_connections:
            headers.append(("connection", "close"))
        per_try = policy.per_try_timeout if policy is not None else None
        plan = self._plan_faults(ex, cluster, host)
        if plan.injected:
            s.stats.inc("upstream_fault.injected")
        t0 = s.clock.monotonic()
        ex.upstream_host = host.key
        ex.attempts_started += 1
        host.active_requests += 1
        cluster.active_requests += 1
        s.stats.cluster_inc(cluster.name, "upstream_rq_total")
        # Until record() runs, the attempt is in flight: if the request ends under it (route
        # timeout, client gone) the cancellation passes through here and Exchange.cut_attempt
        # records it, faults and all.
        in_flight = ex.in_flight = AttemptInFlight(number, host.key, t0, plan.faults)

        def record(outcome: AttemptOutcome, status: int | None) -> None:
            ex.in_flight = None
            ex.attempts.append(in_flight.end(outcome, status, s.clock.monotonic()))

        def done() -> None:
            host.active_requests -= 1
            cluster.active_requests -= 1

        resp: UpstreamResponse | None = None
        cut: int | None = None
        try:
            # Envoy's per-try timeout ends once the response headers are in: a body that
            # streams on is bounded by the route timeout only.
            if per_try is None:  # no timer to arm (asyncio.timeout costs ~1 % of the CPU)
                resp, cut = await self._send(ex, fwd, cluster, host, headers, plan)
            else:
                async with asyncio.timeout(per_try):
                    resp, cut = await self._send(ex, fwd, cluster, host, headers, plan)
        except UpstreamFailure as f:
            kind = AttemptOutcome.CONNECT_FAILURE if f.is_connect_failure else AttemptOutcome.RESET
            if f.is_connect_failure:
                s.stats.cluster_inc(cluster.name, "upstream_cx_connect_fail")
            record(kind, None)
            if f.detail:
                ex.notes.append(f"attempt {number} to {host.key}: {f.detail}")
            self._report(ex, cluster, host, "connect-failure" if f.is_connect_failure else "reset")
            return replies.upstream_reset(f.kind, f.flag, f.transport), Outcome(kind)
        except TimeoutError:
            # Only our per-try timeout raises here: the route timeout cancels the task, and
            # asyncio.timeout turns that into TimeoutError only at the outer block.
            if per_try is None:
                raise
            record(AttemptOutcome.PER_TRY_TIMEOUT, None)
            self._report(ex, cluster, host, "timeout")
            s.stats.cluster_inc(cluster.name, "upstream_rq_per_try_timeout")
            return replies.upstream_timeout(per_try=True), Outcome(AttemptOutcome.PER_TRY_TIMEOUT)
        except ResponseTooLarge as e:
            # The upstream did answer: retries and outlier detection see its status; what
            # reaches the client is Envoy's reply for a response too large to buffer.
            record(AttemptOutcome.RESPONSE_TOO_LARGE, e.status)
            self._count_status(cluster, e.status)
            s.stats.cluster_inc(cluster.name, "upstream_rs_too_large")
            self._report(ex, cluster, host, e.status)
            ex.notes.append(too_large_note(e))
            return replies.response_too_large(), Outcome(AttemptOutcome.RESPONSE, e.status)
        finally:
            # a streamed body keeps its endpoint busy (least-request) until it ends
            if resp is None or resp.rest is None:
                done()
            else:
                resp.rest.on_end.append(done)
        self._count_status(cluster, resp.status)
        self._report(ex, cluster, host, resp.status)
        elapsed = s.clock.monotonic() - t0
        if cut is not None:
            # A whole body the fault reset (streaming off): Envoy had already sent the response
            # headers downstream when the upstream dropped, so the client gets them and a cut
            # body, and nothing can be retried any more.
            record(AttemptOutcome.RESET_AFTER_HEADERS, resp.status)
            ex.flags.add(ResponseFlag.UC)
            ex.notes.append("upstream connection dropped after response headers (UpstreamFault)")
            reply = relay(resp, elapsed, cut)
            return dataclasses.replace(reply, cut=True), Outcome(
                AttemptOutcome.RESPONSE, resp.status
            )
        reply = relay(resp, elapsed)
        record(AttemptOutcome.RESPONSE, resp.status)
        # Only a retry policy reads the headers (grpc-status, retriable status codes).
        lower = {k.lower(): v for k, v in resp.headers} if policy is not None else {}
        return reply, Outcome(AttemptOutcome.RESPONSE, resp.status, lower)

    def _count_status(self, cluster: Cluster, status: int) -> None:
        names = _STATUS_STATS.get(status)
        if names is None:
            names = _STATUS_STATS[status] = (
                f"upstream_rq_{status}", f"upstream_rq_{status // 100}xx"
            )  # fmt: skip
        self.s.stats.cluster_inc(cluster.name, names[0])
        self.s.stats.cluster_inc(cluster.name, names[1])

    def _plan_faults(self, ex: Exchange, cluster: Cluster, host: UpstreamHost) -> AttemptPlan:
        s = self.s
        faults = s.mesh.upstream_faults
        if not faults:
            return NO_FAULT
        return plan_attempt(
            faults, s.fault_states, host_fqdn=cluster.key.host, subset=cluster.key.subset,
            endpoint=host, request=ex.request, now=s.clock.monotonic(),
            rng_for=lambda ref: s.stream(f"upstreamfault/{ref}"),
        )  # fmt: skip

    async def _send(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, host: UpstreamHost,
        headers: Headers, plan: AttemptPlan,
    ) -> tuple[UpstreamResponse, int | None]:  # fmt: skip
        """One attempt on the wire, with the UpstreamFault plan acted out around it; with the
        response, the length announced for a whole body the fault reset (else ``None``)."""
        s = self.s
        if plan.delay > 0:
            await s.sleep(plan.delay)
        if plan.abort is not None:
            abort = plan.abort
            return UpstreamResponse(abort.status, "", abort.headers, abort.body), None
        if plan.reset is not None and plan.reset.after == "connect":
            raise UpstreamFailure("connection failure", "UF", "injected by UpstreamFault")
        if plan.hang:
            await asyncio.Event().wait()  # only a per-try or route timeout ends this attempt
        resp = await s.client.send(
            ex.request.method, cluster.scheme, host.address, host.port, fwd.path, headers,
            ex.body, cluster.connect_timeout, streamable=s.streaming, http2=cluster.http2,
        )  # fmt: skip
        if ex.in_flight is not None:  # a cut from now on still records the upstream's status
            ex.in_flight.status = resp.status
        if not plan.acts_on_body:
            return resp, None
        if s.streaming and resp.status != 101:  # (a WebSocket's 101 has frames, no body)
            # after the head, like a real body: retries and the per-try timeout are over
            number = ex.in_flight.number if ex.in_flight is not None else 0
            return stream_shaped(
                resp, plan, s, ex.notes.append, lambda: self._reset_mid_body(ex, number)
            ), None  # fmt: skip
        shaped = shape_whole(resp, plan)
        ex.notes.extend(shaped.notes)
        if shaped.wait is None:
            await asyncio.Event().wait()  # a pause with no end: only a timeout ends it
        elif shaped.wait > 0:
            # a buffered body arrives whole, after the time the pace and the pauses take
            await s.sleep(shaped.wait)
        return shaped.resp, shaped.length if shaped.reset else None

    def _reset_mid_body(self, ex: Exchange, number: int) -> None:
        """The fault reset a streamed body: the attempt, recorded as answered when its head
        came, is recorded as what it was (the flag and the note come from the relay)."""
        for i, attempt in enumerate(ex.attempts):
            if attempt.number == number:
                outcome = AttemptOutcome.RESET_AFTER_HEADERS
                ex.attempts[i] = dataclasses.replace(attempt, outcome=outcome)

    def _report(self, ex: Exchange, cluster: Cluster, host: UpstreamHost, event: Event) -> None:
        """Feed outlier detection; an ejection is counted and noted on the request."""
        detector = cluster.outlier
        if detector is None or cluster.original_destination:
            return
        s = self.s
        ejection = detector.report(host.key, event, s.clock.monotonic())
        if ejection is not None:
            s.stats.cluster_inc(cluster.name, "outlier_detection.ejections_enforced_total")
            s.stats.cluster_inc(
                cluster.name, f"outlier_detection.ejections_enforced_{ejection.reason}"
            )
            ex.notes.append(
                f"outlier detection ejected {ejection.host} ({ejection.reason}) for "
                f"{ejection.duration:g}s"
            )
        s.stats.cluster_gauge(
            cluster.name, "outlier_detection.ejections_active", detector.ejections_active
        )
