"""The request path, in Envoy's order (istio-reference §0), with no mitmproxy in sight.

route → fault filter (delay, then abort) → router: cluster, route timeout { attempt: pick an
endpoint, per-try timeout, send; retry per policy with back-off } → response header operations.

Everything a request touched is collected in its :class:`Exchange` and becomes one immutable
:class:`~chaoskit.records.Record` when the answer is final.

Loops: an endpoint (or passthrough destination, or mirror) that is one of this proxy's own
listeners would send the request round again. The forward-proxy listener is never a valid
destination (502 ``LOOP`` at once); a Gateway listener is (Istio's egress-gateway pattern), so
such a hop carries ``x-chaoskit-hops`` and the request is refused once it has passed through
the proxy's own listeners :data:`MAX_HOPS` times. The header never reaches other upstreams.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence

from chaoskit.clock import SYSTEM_CLOCK, Clock
from chaoskit.clusters import Cluster, ClusterManager
from chaoskit.config.http_route import GRPC_STATUS
from chaoskit.config.mesh import Mesh
from chaoskit.faults import AttemptPlan, FaultStates, plan_attempt
from chaoskit.faults.plan import NO_FAULT
from chaoskit.loadbalancing.base import UpstreamHost, choose_avoiding
from chaoskit.loadbalancing.consistent_hash import hash_key_for, needs_new_cookie, new_cookie
from chaoskit.proxy import replies
from chaoskit.proxy.addresses import reaches
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.upstream import (
    HOP_BY_HOP,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamFailure,
    UpstreamResponse,
)
from chaoskit.records import (
    CANCELLED,
    CLIENT_GONE,
    ROUTE_TIMEOUT,
    AttemptInFlight,
    AttemptRecord,
    Record,
    RecordLog,
    order_flags,
)
from chaoskit.resilience.circuit_breaker import Overflow, Queued
from chaoskit.resilience.outlier_detection import Event
from chaoskit.resilience.retry import Outcome, RetryDecision, RetryPolicy, RetryState, RetryStatus
from chaoskit.rng import Seeds
from chaoskit.routing.decision import (
    ClusterNotFound,
    Forward,
    LocalReply,
    Mirror,
    NoRoute,
    Passthrough,
)
from chaoskit.routing.headers import HeaderContext
from chaoskit.routing.headers import apply as apply_headers
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.router import Router
from chaoskit.stats import Stats

#: Envoy's connect timeout for passthrough (mesh ``connectTimeout`` default).
PASSTHROUGH_CONNECT_TIMEOUT = 10.0
_HOSTNAME = socket.gethostname()
#: Added when chaoskit forwards to one of its own listeners: how many such hops so far.
HOPS_HEADER = "x-chaoskit-hops"
#: Passes through the proxy's own listeners one request may make (the egress-gateway pattern
#: needs one; a loop is refused on the hop after this many).
MAX_HOPS = 8
#: Kinds of own listener a request may be forwarded to (Istio's egress-gateway pattern): the
#: Gateway listeners. The forward proxy, the admin listener and mitmweb's UI never are.
HOP_KINDS = frozenset({"gateway"})


def without_userinfo(authority: str) -> str:
    """``user:password@host:port`` → ``host:port``: credentials never reach a record."""
    return authority.rpartition("@")[2]


def _hops(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


@dataclasses.dataclass
class Exchange:
    """One downstream request in flight: its inputs and everything decided about it."""

    request: RequestInfo
    headers: list[tuple[str, str]]  # as received, order and case kept
    body: bytes
    listener: str
    start: float  # monotonic
    start_wall: float
    request_id: str = ""
    flags: set[str] = dataclasses.field(default_factory=set)
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)
    faults: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    route_name: str = ""
    host: str = ""
    cluster: str = ""
    upstream_host: str = ""
    #: What the route allows, for explaining a client that gave up early.
    timeout: float | None = None
    retry: RetryPolicy | None = None
    attempts_started: int = 0
    #: passes through this proxy's own listeners before this one (``x-chaoskit-hops``)
    hops: int = 0
    #: The attempt running now, if any: recorded by :meth:`cut_attempt` when the request ends
    #: under it (route timeout, client gone), so the record never misses an attempt that was
    #: sent, or the UpstreamFault acting on it.
    in_flight: AttemptInFlight | None = None

    def cut_attempt(self, outcome: str, now: float) -> None:
        """Record the running attempt, if any, as ended by ``outcome`` (``records.ROUTE_TIMEOUT``,
        ``CLIENT_GONE``, ``CANCELLED``)."""
        if self.in_flight is not None:
            self.attempts.append(self.in_flight.cut(outcome, now))
            self.in_flight = None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A configuration as the request path uses it; swapped as one reference."""

    mesh: Mesh
    router: Router


class Pipeline:
    """Decides and performs; owned by the proxy loop (not thread-safe by design)."""

    def __init__(
        self,
        seeds: Seeds,
        client: UpstreamClient,
        *,
        records: RecordLog | None = None,
        stats: Stats | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.seeds = seeds
        self.client = client
        self.records = records if records is not None else RecordLog()
        self.stats = stats if stats is not None else Stats()
        self.clock = clock
        self._sleep = sleep
        self.clusters = ClusterManager(seeds, clock.monotonic, stats=self.stats)
        self.fault_states = FaultStates()
        #: mirror requests in flight (kept referenced so they are not garbage-collected)
        self._background: set[asyncio.Future[None]] = set()
        self.snapshot = Snapshot(Mesh(), Router(Mesh()))
        #: This proxy's listening addresses, ``(host, port) → "mesh" | "gateway"`` (the core
        #: asks mitmproxy); used to refuse requests that would loop back into the proxy.
        self.own_listeners: Callable[[], Mapping[tuple[str, int], str]] = dict

    # -- configuration ------------------------------------------------------------------

    def set_seed(self, seed: int) -> None:
        """A new seed for every stream (routing, load balancing, faults); state starts over."""
        self.seeds = Seeds(seed)
        self.clusters.seeds = self.seeds
        self.clusters.reset_state()

    def set_mesh(self, mesh: Mesh) -> None:
        """Swap in a new configuration; requests already running finish on the old one."""
        self.snapshot = Snapshot(mesh, Router(mesh))
        self.clusters.update(mesh)
        # A fault whose definition did not change keeps counting (firstN, sequence) across a
        # reload; a changed or new one starts afresh.
        self.fault_states.apply(mesh.upstream_faults, self.clock.monotonic(), keep_unchanged=True)

    def restart_faults(self) -> None:
        """Every UpstreamFault counts from zero again (a new test, a new experiment phase)."""
        self.fault_states.apply(self.snapshot.mesh.upstream_faults, self.clock.monotonic())

    # -- the request path -----------------------------------------------------------------

    def new_exchange(
        self, request: RequestInfo, headers: list[tuple[str, str]], body: bytes, listener: str
    ) -> Exchange:
        ex = Exchange(request, headers, body, listener, self.clock.monotonic(), self.clock.wall())
        ex.request_id = request.headers.get("x-request-id") or self._new_request_id()
        ex.hops = _hops(request.headers.get(HOPS_HEADER))
        return ex

    def _new_request_id(self) -> str:
        return str(uuid.UUID(int=self.seeds.stream("request-id").getrandbits(128), version=4))

    async def handle(self, ex: Exchange) -> Reply:
        if ex.hops and ex.listener == "mesh":
            # Only chaoskit sets the header, and only towards its own listeners: a request that
            # reached the forward proxy that way went round in a circle.
            ex.notes.append(
                "request loop: forwarded back to this proxy's own forward-proxy listener; refused"
            )
            self.stats.inc("http.downstream_rq_loop")
            return replies.request_loop()
        snap = self.snapshot
        decision = snap.router.route(ex.request, ex.listener, self.seeds.stream("route"))
        if isinstance(decision, NoRoute):
            return replies.no_route()
        if isinstance(decision, ClusterNotFound):
            ex.cluster = decision.cluster.name
            ex.host = decision.cluster.host
            return replies.cluster_not_found()
        if isinstance(decision, LocalReply):
            ex.route_name = decision.route_name
            reply = replies.local_reply(
                decision.status, decision.body, details=decision.details, headers=decision.headers
            )
            return reply
        if isinstance(decision, Passthrough):
            return await self._passthrough(ex, decision)
        assert isinstance(decision, Forward)
        return await self._forward(ex, decision)

    async def _passthrough(self, ex: Exchange, p: Passthrough) -> Reply:
        """ALLOW_ANY to a host outside the registry: the original destination, no policies."""
        ex.route_name = "allow_any"
        ex.host = p.host
        ex.cluster = "PassthroughCluster"
        headers = self._upstream_headers(ex, ex.headers, attempt=None)
        path = ex.request.path + (f"?{ex.request.query}" if ex.request.query else "")
        t0 = self.clock.monotonic()
        ex.upstream_host = f"{p.host}:{p.port}"
        refusal, hop = self._loop_check(ex, p.host, p.port)
        if refusal is not None:
            ex.attempts.append(AttemptRecord(1, ex.upstream_host, "loop"))
            return refusal
        ex.in_flight = AttemptInFlight(1, ex.upstream_host, t0, ())  # recorded if cut off
        try:
            resp = await self.client.send(
                ex.request.method, "http", p.host, p.port, path, headers + hop, ex.body,
                PASSTHROUGH_CONNECT_TIMEOUT,
            )  # fmt: skip
        except UpstreamFailure as f:
            ex.in_flight = None
            ex.attempts.append(
                AttemptRecord(1, ex.upstream_host, f.kind, None, self.clock.monotonic() - t0)
            )
            if f.detail:
                ex.notes.append(f"passthrough to {ex.upstream_host}: {f.detail}")
            return replies.upstream_reset(f.kind, f.flag, f.transport)
        except ResponseTooLarge as e:
            ex.in_flight = None
            ex.attempts.append(
                AttemptRecord(1, ex.upstream_host, "response-too-large", e.status,
                              self.clock.monotonic() - t0)
            )  # fmt: skip
            ex.notes.append(self._too_large_note(e))
            return replies.response_too_large()
        ex.in_flight = None
        ex.attempts.append(
            AttemptRecord(1, ex.upstream_host, "response", resp.status, self.clock.monotonic() - t0)
        )
        return self._relay(resp, t0)

    def own_listener(self, address: str, port: int) -> str | None:
        """The kind of this proxy's own listener (``"mesh"``, ``"gateway"``, ``"admin"``,
        ``"web"``) that ``address:port`` reaches, however the address is spelled
        (:mod:`chaoskit.proxy.addresses`), or ``None``."""
        for (host, bound_port), kind in self.own_listeners().items():
            if bound_port == port and reaches(address, host):
                return kind
        return None

    def _loop_check(
        self, ex: Exchange, address: str, port: int
    ) -> tuple[Reply | None, list[tuple[str, str]]]:
        """Refuse a destination that is this proxy itself, or the hop header to send it."""
        kind = self.own_listener(address, port)
        if kind is None:
            return None, []
        if kind not in HOP_KINDS:
            what = {"mesh": "forward-proxy", "admin": "admin", "web": "web UI"}.get(kind, kind)
            ex.notes.append(
                f"request loop: {address}:{port} is this proxy's own {what} listener; refused"
            )
            self.stats.inc("http.downstream_rq_loop")
            return replies.request_loop(), []
        hops = ex.hops + 1
        if hops > MAX_HOPS:
            ex.notes.append(
                f"request loop: passed through this proxy's own listeners {ex.hops} times "
                f"(at most {MAX_HOPS}); refused"
            )
            self.stats.inc("http.downstream_rq_loop")
            return replies.request_loop(), []
        return None, [(HOPS_HEADER, str(hops))]

    @staticmethod
    def _too_large_note(e: ResponseTooLarge) -> str:
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

    async def _forward(self, ex: Exchange, fwd: Forward) -> Reply:
        ex.route_name = fwd.route_name
        ex.host = fwd.cluster.host
        ex.cluster = fwd.cluster.name
        ctx = self._header_context(ex)
        reply = await self._fault_then_route(ex, fwd, ctx)
        return reply.with_headers(apply_headers(fwd.response_headers, list(reply.headers), ctx))

    def _header_context(self, ex: Exchange) -> HeaderContext:
        return HeaderContext(
            hostname=_HOSTNAME,
            downstream_remote_address=ex.request.client_address,
            protocol="HTTP/1.1",
            start_time=datetime.datetime.fromtimestamp(ex.start_wall, tz=datetime.UTC),
            request_headers=ex.request.headers,
        )

    async def _fault_then_route(self, ex: Exchange, fwd: Forward, ctx: HeaderContext) -> Reply:
        fault = fwd.fault
        if fault is not None:
            stream = self.seeds.stream(f"fault/{fwd.route_name}/{ex.cluster}")
            if fault.delay is not None and _draw(stream, fault.delay.percentage):
                ex.flags.add("DI")
                ex.faults.append("delay")
                self.stats.inc("fault.delays_injected")
                await self._sleep(fault.delay.fixed_delay)
            if fault.abort is not None and _draw(stream, fault.abort.percentage):
                ex.faults.append("abort")
                self.stats.inc("fault.aborts_injected")
                if fault.abort.grpc_status is not None:
                    code = GRPC_STATUS[fault.abort.grpc_status]
                    return replies.Reply(
                        200,
                        (("content-type", "application/grpc"), ("grpc-status", str(code)),
                         ("grpc-message", "fault filter abort"), ("content-length", "0")),
                        b"", ("FI",), "fault_filter_abort",
                    )  # fmt: skip
                return replies.fault_abort(fault.abort.http_status or 500)
        cluster = self.clusters.get(fwd.cluster, ex.request.source.name)
        if cluster is None:
            return replies.cluster_not_found()
        upstream_headers = apply_headers(fwd.request_headers, ex.headers, ctx)
        for mirror in fwd.mirrors:
            self._mirror(ex, fwd, mirror, upstream_headers)
        timeout = fwd.timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._attempts(ex, fwd, cluster, upstream_headers)
        except TimeoutError:
            self.stats.cluster_inc(cluster.name, "upstream_rq_timeout")
            ex.notes.append(f"route timeout {timeout:g}s expired")
            ex.cut_attempt(ROUTE_TIMEOUT, self.clock.monotonic())
            return replies.upstream_timeout()

    async def _attempts(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, upstream_headers: list[tuple[str, str]]
    ) -> Reply:
        """First try and retries. Whether to retry is decided (:class:`RetryState`, Envoy's
        ``shouldRetry``) before any back-off: a retry refused by ``attempts`` (``URX``) or by the
        ``maxRetries`` breaker / retry budget (``UO``) is answered at once. A retry holds its
        breaker slot from that decision until it ends (Envoy: ``retries().inc()`` …
        ``resetRetry()``), back-off included."""
        policy = RetryPolicy.from_route(fwd.retry)
        ex.retry, ex.timeout = policy, fwd.timeout
        state = RetryState.start(policy) if policy is not None else None
        max_attempts = 1 + (policy.num_retries if policy else 0)
        tried: list[UpstreamHost] = []
        reply: Reply | None = None
        hash_key, set_cookie = self._hash_key(ex, cluster)
        # Envoy: retries avoid previous hosts, except under consistent hashing (§3.3).
        avoid_previous = (
            policy is not None and policy.retry_ignore_previous_hosts and hash_key is None
        )
        for number in range(1, max_attempts + 1):
            try:
                reply, outcome = await self._admitted(
                    ex, fwd, cluster, number, policy, upstream_headers,
                    tried if avoid_previous else (), tried, hash_key,
                )  # fmt: skip
            finally:
                if number > 1:  # only a YES decision below leads here: it took a retry slot
                    cluster.breaker.retry_done()
            if state is None or policy is None:
                break
            decision = state.should_retry(outcome, cluster.breaker.try_retry)
            state = decision.state
            for stat in decision.stats:
                self.stats.cluster_inc(cluster.name, stat)
            if decision.status is not RetryStatus.YES:
                self._retry_refused(ex, cluster, decision, number)
                break
            try:
                await self._sleep(policy.backoff(number, cluster.rng))
            except BaseException:  # route timeout or client gone during back-off
                cluster.breaker.retry_done()
                raise
        assert reply is not None
        if set_cookie is not None:
            reply = reply.with_headers([*reply.headers, ("set-cookie", set_cookie)])
        return reply

    @staticmethod
    def _retry_refused(ex: Exchange, cluster: Cluster, decision: RetryDecision, tries: int) -> None:
        """Flag and explain a retriable outcome that was not retried; the answer stands."""
        if decision.flag is not None:
            ex.flags.add(decision.flag)
        if decision.status is RetryStatus.NO_RETRY_LIMIT_EXCEEDED:
            ex.notes.append(f"retries exhausted after {tries} attempts")
        elif decision.status is RetryStatus.NO_OVERFLOW:
            # The last answer stands, flagged UO, without x-envoy-overloaded (§2.9).
            breaker = cluster.breaker
            what = "retry budget" if breaker.retry_budget is not None else "maxRetries breaker"
            ex.notes.append(
                f"retry skipped: the {what} of {cluster.name} is full "
                f"({breaker.active_retries} retries active)"
            )

    async def _admitted(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, number: int,
        policy: RetryPolicy | None, upstream_headers: list[tuple[str, str]],
        avoid: Sequence[UpstreamHost], tried: list[UpstreamHost], hash_key: int | None,
    ) -> tuple[Reply, Outcome]:  # fmt: skip
        """Through the circuit breakers (maybe waiting in the pending queue), then one attempt."""
        admission = cluster.breaker.admit()
        if isinstance(admission, Overflow):
            self.stats.cluster_inc(cluster.name, "upstream_rq_pending_overflow")
            ex.notes.append(f"circuit breaker overflow ({admission.reason}): 503 UO, not retried")
            ex.attempts.append(AttemptRecord(number, "", "overflow"))
            return replies.overflow(), Outcome("overflow")
        ticket = admission.ticket
        if isinstance(admission, Queued):
            self.stats.cluster_inc(cluster.name, "upstream_rq_pending_total")
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            cluster.waiters[ticket] = waiter
            try:
                await waiter
            except BaseException:  # route timeout or the client went away while queued
                cluster.waiters.pop(ticket, None)
                self._wake(cluster, cluster.breaker.cancel(ticket))
                # No attempt existed yet (no endpoint chosen, nothing sent, no UpstreamFault
                # planned), so none is recorded; the note and Envoy's counter say what happened.
                self.stats.cluster_inc(cluster.name, "upstream_rq_cancelled")
                ex.notes.append(
                    f"ended while queued for a connection to {cluster.name} (pending): "
                    "no attempt was sent"
                )
                raise
        try:
            hosts = cluster.healthy_hosts(self.clock.monotonic())
            if cluster.original_destination:
                host: UpstreamHost | None = UpstreamHost(ex.request.host, ex.request.port)
            elif not hosts:
                host = None
            else:
                host = choose_avoiding(cluster.lb, hosts, cluster.rng, avoid, hash_key)
            if host is None:
                ex.notes.append(f"no healthy endpoint in {cluster.name}")
                return replies.no_healthy_upstream(), Outcome("no-healthy-upstream")
            tried.append(host)
            return await self._attempt(ex, fwd, cluster, host, number, policy, upstream_headers)
        finally:
            self._wake(cluster, cluster.breaker.release(ticket))

    @staticmethod
    def _wake(cluster: Cluster, ticket: int | None) -> None:
        """Hand a freed connection to the next queued request still waiting for one."""
        while ticket is not None:
            waiter = cluster.waiters.pop(ticket, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
                return
            ticket = cluster.breaker.release(ticket)  # nobody waits on it any more: pass it on

    def _report(self, ex: Exchange, cluster: Cluster, host: UpstreamHost, event: Event) -> None:
        """Feed outlier detection; an ejection is counted and noted on the request."""
        detector = cluster.outlier
        if detector is None or cluster.original_destination:
            return
        ejection = detector.report(host.key, event, self.clock.monotonic())
        if ejection is not None:
            self.stats.cluster_inc(cluster.name, "outlier_detection.ejections_enforced_total")
            self.stats.cluster_inc(
                cluster.name, f"outlier_detection.ejections_enforced_{ejection.reason}"
            )
            ex.notes.append(
                f"outlier detection ejected {ejection.host} ({ejection.reason}) for "
                f"{ejection.duration:g}s"
            )
        self.stats.cluster_gauge(
            cluster.name, "outlier_detection.ejections_active", detector.ejections_active
        )

    def _hash_key(self, ex: Exchange, cluster: Cluster) -> tuple[int | None, str | None]:
        """Consistent hashing: the request's key, or a generated cookie (Envoy's ttl cookie)."""
        settings = cluster.consistent_hash
        if settings is None:
            return None, None
        key = hash_key_for(settings, ex.request)
        if key is None and needs_new_cookie(settings, ex.request):
            key, cookie = new_cookie(settings, cluster.rng)
            return key, cookie
        return key, None

    def _mirror(
        self, ex: Exchange, fwd: Forward, mirror: Mirror, headers: list[tuple[str, str]]
    ) -> None:
        """Fire-and-forget copy (istio-reference §2.7): never awaited, result discarded."""
        if not _draw(self.seeds.stream(f"mirror/{mirror.cluster.name}"), mirror.percentage):
            return
        cluster = self.clusters.get(mirror.cluster, ex.request.source.name)
        hosts = cluster.healthy_hosts(self.clock.monotonic()) if cluster is not None else []
        host = choose_avoiding(cluster.lb, hosts, cluster.rng) if cluster and hosts else None
        if cluster is None or host is None:
            return
        out = self._upstream_headers(ex, headers, attempt=None)
        out = [(k, v) for k, v in out if k.lower() != "host"] + [("host", fwd.authority)]
        name = cluster.name
        own = self.own_listener(host.address, host.port)
        if own is not None:  # a mirror into the proxy itself: same rules as a forward
            if own not in HOP_KINDS or ex.hops + 1 > MAX_HOPS:
                ex.notes.append(f"mirror to {host.key} skipped: it would loop into this proxy")
                return
            out.append((HOPS_HEADER, str(ex.hops + 1)))

        async def send() -> None:
            self.stats.cluster_inc(name, "upstream_rq_total")
            try:
                resp = await self.client.send(
                    ex.request.method, cluster.scheme, host.address, host.port, fwd.path, out,
                    ex.body, cluster.connect_timeout,
                )  # fmt: skip
                self.stats.cluster_inc(name, f"upstream_rq_{resp.status}")
            except UpstreamFailure:
                self.stats.cluster_inc(name, "upstream_cx_connect_fail")
            except ResponseTooLarge as e:  # discarded anyway; never an unretrieved exception
                self.stats.cluster_inc(name, f"upstream_rq_{e.status}")

        task = asyncio.ensure_future(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _attempt(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, host: UpstreamHost, number: int,
        policy: RetryPolicy | None, upstream_headers: list[tuple[str, str]],
    ) -> tuple[Reply, Outcome]:  # fmt: skip
        headers = self._upstream_headers(ex, upstream_headers, number)
        headers = [(k, v) for k, v in headers if k.lower() != "host"] + [("host", fwd.authority)]
        refusal, hop = self._loop_check(ex, host.address, host.port)
        if refusal is not None:
            ex.upstream_host = host.key
            ex.attempts.append(AttemptRecord(number, host.key, "loop"))
            return refusal, Outcome("loop")
        headers += hop
        if fwd.original_path is not None:
            headers.append(("x-envoy-original-path", fwd.original_path))
        if cluster.close_connections:
            headers.append(("connection", "close"))
        per_try = policy.per_try_timeout if policy is not None else None
        plan = self._plan_faults(ex, cluster, host)
        if plan.injected:
            self.stats.inc("upstream_fault.injected")
        t0 = self.clock.monotonic()
        ex.upstream_host = host.key
        ex.attempts_started += 1
        host.active_requests += 1
        cluster.active_requests += 1
        self.stats.cluster_inc(cluster.name, "upstream_rq_total")
        # Until record() runs, the attempt is in flight: if the request ends under it (route
        # timeout, client gone) the cancellation passes through here and Exchange.cut_attempt
        # records it, faults and all.
        in_flight = ex.in_flight = AttemptInFlight(number, host.key, t0, plan.faults)

        def record(outcome: str, status: int | None) -> None:
            ex.in_flight = None
            ex.attempts.append(in_flight.end(outcome, status, self.clock.monotonic()))

        try:
            async with asyncio.timeout(per_try):
                resp = await self._exchange(ex, fwd, cluster, host, headers, plan)
        except UpstreamFailure as f:
            kind = "connect-failure" if f.is_connect_failure else "reset"
            if f.is_connect_failure:
                self.stats.cluster_inc(cluster.name, "upstream_cx_connect_fail")
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
            record("per-try-timeout", None)
            self._report(ex, cluster, host, "timeout")
            self.stats.cluster_inc(cluster.name, "upstream_rq_per_try_timeout")
            return replies.upstream_timeout(per_try=True), Outcome("per-try-timeout")
        except ResponseTooLarge as e:
            # The upstream did answer: retries and outlier detection see its status; what
            # reaches the client is Envoy's reply for a response too large to buffer.
            record("response-too-large", e.status)
            self.stats.cluster_inc(cluster.name, f"upstream_rq_{e.status}")
            self.stats.cluster_inc(cluster.name, f"upstream_rq_{e.status // 100}xx")
            self.stats.cluster_inc(cluster.name, "upstream_rs_too_large")
            self._report(ex, cluster, host, e.status)
            ex.notes.append(self._too_large_note(e))
            return replies.response_too_large(), Outcome("response", e.status)
        finally:
            host.active_requests -= 1
            cluster.active_requests -= 1
        self.stats.cluster_inc(cluster.name, f"upstream_rq_{resp.status}")
        self.stats.cluster_inc(cluster.name, f"upstream_rq_{resp.status // 100}xx")
        self._report(ex, cluster, host, resp.status)
        reply = self._relay(resp, t0)
        if plan.reset is not None and plan.reset.after != "connect":
            # Envoy had already sent the response headers downstream when the upstream dropped:
            # the client gets them and a cut body, and nothing can be retried any more.
            record("reset-after-headers", resp.status)
            ex.flags.add("UC")
            ex.notes.append("upstream connection dropped after response headers (UpstreamFault)")
            cut = resp.body[: plan.reset.after_bytes or 0]
            return dataclasses.replace(reply, body=cut, cut=True), Outcome("response", resp.status)
        record("response", resp.status)
        # Only a retry policy reads the headers (grpc-status, retriable status codes).
        lower = {k.lower(): v for k, v in resp.headers} if policy is not None else {}
        return reply, Outcome("response", resp.status, lower)

    def _plan_faults(self, ex: Exchange, cluster: Cluster, host: UpstreamHost) -> AttemptPlan:
        faults = self.snapshot.mesh.upstream_faults
        if not faults:
            return NO_FAULT
        return plan_attempt(
            faults, self.fault_states, host_fqdn=cluster.key.host, subset=cluster.key.subset,
            endpoint=host, request=ex.request, now=self.clock.monotonic(),
            rng_for=lambda ref: self.seeds.stream(f"upstreamfault/{ref}"),
        )  # fmt: skip

    async def _exchange(
        self, ex: Exchange, fwd: Forward, cluster: Cluster, host: UpstreamHost,
        headers: list[tuple[str, str]], plan: AttemptPlan,
    ) -> UpstreamResponse:  # fmt: skip
        """One attempt on the wire, with the UpstreamFault plan acted out around it."""
        if plan.delay > 0:
            await self._sleep(plan.delay)
        if plan.abort is not None:
            return UpstreamResponse(plan.abort.status, "", plan.abort.headers, plan.abort.body)
        if plan.reset is not None and plan.reset.after == "connect":
            raise UpstreamFailure("connection failure", "UF", "injected by UpstreamFault")
        if plan.hang:
            await asyncio.Event().wait()  # only a per-try or route timeout ends this attempt
        resp = await self.client.send(
            ex.request.method, cluster.scheme, host.address, host.port, fwd.path, headers,
            ex.body, cluster.connect_timeout,
        )  # fmt: skip
        if ex.in_flight is not None:  # a cut from now on still records the upstream's status
            ex.in_flight.status = resp.status
        if plan.slow_body_bps:
            # Bodies are buffered, so a slow body arrives whole, after the time it would take.
            await self._sleep(len(resp.body) / plan.slow_body_bps)
        if plan.truncate_after is not None or plan.corrupt_bytes:
            resp = dataclasses.replace(resp, body=plan.transform_body(resp.body))
        return resp

    def _relay(self, resp: UpstreamResponse, t0: float) -> Reply:
        elapsed_ms = int((self.clock.monotonic() - t0) * 1000)
        headers = [*resp.headers, ("content-length", str(len(resp.body)))]
        headers.append(("x-envoy-upstream-service-time", str(elapsed_ms)))
        return Reply(resp.status, tuple(headers), resp.body, reason=resp.reason, local=False)

    def _upstream_headers(
        self, ex: Exchange, headers: list[tuple[str, str]], attempt: int | None
    ) -> list[tuple[str, str]]:
        drop = _hop_by_hop(headers)
        out = [(k, v) for k, v in headers if k.lower() not in drop]
        out.append(("x-request-id", ex.request_id))
        out.append(("x-forwarded-proto", ex.request.scheme))
        if attempt is not None:
            out.append(("x-envoy-attempt-count", str(attempt)))
        return out

    def gave_up_note(self, ex: Exchange) -> str:
        """The seed document's lesson, said plainly: a client that gives up before the mesh's
        timeout and retry budget is spent makes the remaining retries pointless."""
        waited = self.clock.monotonic() - ex.start
        policy = ex.retry
        who = "client" if not ex.request.source.name else f"client {ex.request.source.name}"
        target = f" waiting for {ex.host.split('.')[0]}" if ex.host else ""
        if policy is None:
            if ex.timeout:
                return (f"{who} gave up after {waited:.1f}s{target}; the route would have waited "
                        f"up to {ex.timeout:g}s for an answer")  # fmt: skip
            return f"{who} gave up after {waited:.1f}s{target}"
        tries = 1 + policy.num_retries
        allows = f"{tries} attempts"
        if policy.per_try_timeout:
            allows = f"{tries} × {policy.per_try_timeout:g}s attempts"
        if ex.timeout:
            allows += f" within a {ex.timeout:g}s timeout"
        left = max(0, tries - ex.attempts_started)
        wasted = "retries here are wasted" if left else "its retries were already spent"
        return f"{who} gave up after {waited:.1f}s{target}; the route allows {allows} — {wasted}"

    # -- the record -------------------------------------------------------------------------

    def finish(self, ex: Exchange, reply: Reply, *, client_gone: bool = False) -> Record:
        # An attempt still running when the request ended (the client went away, or the
        # pipeline was cancelled for another reason) is recorded, not dropped.
        ex.cut_attempt(CLIENT_GONE if client_gone else CANCELLED, self.clock.monotonic())
        flags = set(ex.flags) | set(reply.flags)
        if client_gone:
            flags.add("DC")
        req = ex.request
        record = Record(
            seq=self.records.next_seq(),
            request_id=ex.request_id,
            start=ex.start_wall,
            duration=self.clock.monotonic() - ex.start,
            listener=ex.listener,
            source=req.source.name,
            method=req.method,
            scheme=req.scheme,
            authority=without_userinfo(req.authority),
            path=req.path + (f"?{req.query}" if req.query else ""),
            status=reply.status,
            flags=order_flags(flags),
            details=reply.details or ("via_upstream" if not reply.local else ""),
            route_name=ex.route_name,
            host=ex.host,
            cluster=ex.cluster,
            upstream_host=ex.upstream_host,
            attempts=tuple(ex.attempts),
            faults=tuple(ex.faults),
            notes=tuple(ex.notes),
            bytes_received=len(ex.body),
            bytes_sent=len(reply.body),
            user_agent=req.headers.get("user-agent", ""),
        )
        self.records.append(record)
        self.stats.inc("http.downstream_rq_total")
        if reply.status:
            self.stats.inc(f"http.downstream_rq_{reply.status // 100}xx")
        if client_gone:
            self.stats.inc("http.downstream_rq_client_gone")
        return record


#: Request headers chaoskit sets itself, so a client's own value never reaches the upstream
#: beside it (Envoy overwrites ``x-forwarded-proto`` and ``x-envoy-attempt-count``).
_REPLACED = frozenset(
    {"x-request-id", "x-envoy-attempt-count", "content-length", "x-forwarded-proto", HOPS_HEADER}
)


def _hop_by_hop(headers: Sequence[tuple[str, str]]) -> frozenset[str]:
    """Lower-case names never forwarded: the fixed hop-by-hop set, the headers chaoskit
    replaces, and every header the ``Connection`` header names (RFC 9110 §7.6.1)."""
    named = {
        token.strip().lower()
        for k, v in headers
        if k.lower() == "connection"
        for token in v.split(",")
        if token.strip()
    }
    fixed = HOP_BY_HOP | _REPLACED
    return fixed | named if named else fixed


def _draw(rng: random.Random, percentage: float) -> bool:
    """Envoy's fractional percent: an integer draw per million, so 0 is exactly never."""
    per_million = round(percentage * 10_000)
    return per_million > 0 and rng.randrange(1_000_000) < per_million
