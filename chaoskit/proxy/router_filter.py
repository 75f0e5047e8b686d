"""Envoy's router filter for a routed request (envoy/source/common/router/router.cc): the
route timeout around everything, then the first try and its retries, each through the
cluster's circuit breakers to one endpoint.

Whether to retry is decided (:class:`~chaoskit.resilience.retry.RetryState`, Envoy's
``shouldRetry``) right after an attempt and before any back-off; each
:class:`~chaoskit.resilience.retry.RetryStatus` maps to exactly one response flag and one
cluster counter. A retry holds its breaker slot from that decision until it ends (Envoy:
``retries().inc()`` … ``resetRetry()``), back-off included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from chaoskit.clusters import Cluster
from chaoskit.loadbalancing.base import UpstreamHost, choose_avoiding
from chaoskit.loadbalancing.consistent_hash import hash_key_for, needs_new_cookie, new_cookie
from chaoskit.proxy import replies
from chaoskit.proxy.admission import admit
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.forwarding import Headers
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.services import Services
from chaoskit.proxy.upstream_request import UpstreamRequest
from chaoskit.records import AttemptOutcome, AttemptRecord
from chaoskit.resilience.circuit_breaker import Overflow
from chaoskit.resilience.retry import Outcome, RetryDecision, RetryPolicy, RetryState, RetryStatus
from chaoskit.routing.decision import Forward
from chaoskit.routing.grpc_timeout import final_timeout, for_attempt, is_grpc


class RouterFilter:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.upstream = UpstreamRequest(services)

    async def forward(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, headers: Headers
    ) -> Reply:
        """The answer for ``ex`` from ``cluster`` within the route timeout, or a gRPC call's
        ``grpc-timeout`` up to it (``504 UT`` when it expires: the attempt running then is
        recorded as cut off)."""
        req = ex.request.headers
        call = final_timeout(fwd.timeout, req.get("content-type"), req.get("grpc-timeout"))
        if call.note:
            ex.notes.append(call.note)
        try:
            async with asyncio.timeout(call.timeout) as timer:
                reply = await self._attempts(ex, fwd, cluster, headers, call.timeout)
            if reply.stream is not None:  # the route timeout goes on over the body
                reply.stream.deadline = timer.when()
            return reply
        except TimeoutError:
            self.s.stats.cluster_inc(cluster.name, "upstream_rq_timeout")
            ex.notes.append(f"route timeout {call.timeout:g}s expired")
            ex.cut_attempt(AttemptOutcome.ROUTE_TIMEOUT, self.s.clock.monotonic())
            return replies.upstream_timeout()

    async def _attempts(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, headers: Headers,
        timeout: float | None,
    ) -> Reply:  # fmt: skip
        """First try and retries; a refused retry is answered at once, with no back-off."""
        policy = RetryPolicy.from_route(fwd.retry)
        ex.retry, ex.timeout = policy, timeout
        grpc = is_grpc(ex.request.headers.get("content-type"))
        per_try, start = policy.per_try_timeout if policy else None, self.s.clock.monotonic()
        state = RetryState.start(policy) if policy is not None else None
        tried: list[UpstreamHost] = []
        hash_key, set_cookie = self._hash_key(ex, cluster)
        # Envoy: retries avoid previous hosts, except under consistent hashing.
        avoid = policy is not None and policy.retry_ignore_previous_hosts and hash_key is None
        number = 0
        while True:
            number += 1
            sent = headers  # a gRPC server is told the deadline the mesh enforces (Envoy)
            if grpc:
                sent = for_attempt(headers, timeout, per_try, self.s.clock.monotonic() - start)
            try:
                reply, outcome = await self._admitted_attempt(
                    ex, fwd, cluster, number, policy, sent, tried if avoid else (), tried,
                    hash_key,
                )  # fmt: skip
            finally:
                if number > 1:  # only a YES decision below leads here: it took a retry slot
                    cluster.breaker.retry_done()
            if state is None:
                break
            decision = state.should_retry(outcome, cluster.breaker.try_retry)
            state = decision.state
            for stat in decision.stats:
                self.s.stats.cluster_inc(cluster.name, stat)
            match decision.status:
                case RetryStatus.YES:
                    if reply.stream is not None:  # Envoy resets the answer it retries
                        reply.stream.close()
                    await self._back_off(state.policy, number, cluster)
                case RetryStatus.NO:
                    break
                case RetryStatus.NO_RETRY_LIMIT_EXCEEDED | RetryStatus.NO_OVERFLOW:
                    self._retry_refused(ex, cluster, decision, number)
                    break
        if set_cookie is not None:
            reply = reply.with_headers([*reply.headers, ("set-cookie", set_cookie)])
        return reply

    async def _back_off(self, policy: RetryPolicy, number: int, cluster: Cluster) -> None:
        try:
            await self.s.sleep(policy.backoff(number, cluster.rng))
        except BaseException:  # route timeout or client gone during back-off
            cluster.breaker.retry_done()
            raise

    @staticmethod
    def _retry_refused(ex: Exchange, cluster: Cluster, decision: RetryDecision, tries: int) -> None:
        """Flag and explain a retriable outcome that was not retried; the answer stands."""
        if decision.flag is not None:
            ex.flags.add(decision.flag)
        if decision.status is RetryStatus.NO_RETRY_LIMIT_EXCEEDED:
            ex.notes.append(f"retries exhausted after {tries} attempts")
        else:  # NO_OVERFLOW: the last answer stands, flagged UO, without x-envoy-overloaded
            breaker = cluster.breaker
            what = "retry budget" if breaker.retry_budget is not None else "maxRetries breaker"
            ex.notes.append(
                f"retry skipped: the {what} of {cluster.name} is full "
                f"({breaker.active_retries} retries active)"
            )

    async def _admitted_attempt(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, number: int,
        policy: RetryPolicy | None, headers: Headers, avoid: Sequence[UpstreamHost],
        tried: list[UpstreamHost], hash_key: int | None,
    ) -> tuple[Reply, Outcome]:  # fmt: skip
        """Through the circuit breakers (maybe waiting in the pending queue), to one endpoint.
        A streamed answer holds its connection slot until its body ends."""
        admission = await admit(cluster, ex, self.s.stats)
        if isinstance(admission, Overflow):
            ex.notes.append(f"circuit breaker overflow ({admission.reason}): 503 UO, not retried")
            ex.attempts.append(AttemptRecord(number, "", AttemptOutcome.OVERFLOW))
            return replies.overflow(), Outcome(AttemptOutcome.OVERFLOW)
        release: Callable[[], None] | None = admission
        try:
            host = self._choose(ex, cluster, avoid, hash_key)
            if host is None:
                ex.notes.append(f"no healthy endpoint in {cluster.name}")
                outcome = Outcome(AttemptOutcome.NO_HEALTHY_UPSTREAM)
                return replies.no_healthy_upstream(), outcome
            tried.append(host)
            reply, outcome = await self.upstream.attempt(
                ex, fwd, cluster, host, number, policy, headers
            )
            if reply.stream is not None:
                reply.stream.on_end.append(admission)
                release = None
            return reply, outcome
        finally:
            if release is not None:
                release()

    def _choose(
        self, ex: Exchange, cluster: Cluster, avoid: Sequence[UpstreamHost], hash_key: int | None
    ) -> UpstreamHost | None:
        """The endpoint for this attempt: the load balancer's pick among healthy hosts (the
        caller's own address for an ``ORIGINAL_DST`` cluster)."""
        if cluster.original_destination:
            return UpstreamHost(ex.request.host, ex.request.port)
        hosts = cluster.healthy_hosts(self.s.clock.monotonic())
        if not hosts:
            return None
        return choose_avoiding(cluster.lb, hosts, cluster.rng, avoid, hash_key)

    @staticmethod
    def _hash_key(ex: Exchange, cluster: Cluster) -> tuple[int | None, str | None]:
        """Consistent hashing: the request's key, or a generated cookie (Envoy's ttl cookie)."""
        settings = cluster.consistent_hash
        if settings is None:
            return None, None
        key = hash_key_for(settings, ex.request)
        if key is None and needs_new_cookie(settings, ex.request):
            return new_cookie(settings, cluster.rng)
        return key, None
