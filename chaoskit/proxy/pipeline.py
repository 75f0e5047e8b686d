"""The request path, top-down, in Envoy's filter order — and nothing else: each step lives in
a module of its own, this one only orchestrates.

    loop check (:mod:`~chaoskit.proxy.loops`)
    → route (:class:`~chaoskit.routing.router.Router`: route, local reply, passthrough, forward)
    → fault filter: delay, then abort (:mod:`~chaoskit.proxy.fault_filter`)
    → request header operations, mirrors (:mod:`~chaoskit.proxy.mirror`)
    → router filter: route timeout { circuit breakers → endpoint → attempt → retry decision }
      (:mod:`~chaoskit.proxy.router_filter`, :mod:`~chaoskit.proxy.admission`,
      :mod:`~chaoskit.proxy.upstream_request`)
    → response header operations
    → record (:meth:`Pipeline.finish`, :mod:`~chaoskit.proxy.exchange`)

No mitmproxy here: the addons in :mod:`chaoskit.proxy.core` turn a flow into an
:class:`Exchange` and a :class:`~chaoskit.proxy.replies.Reply` back into a response, so the whole
path runs in tests without sockets (a fake upstream, clock and sleep from
:mod:`chaoskit.testing`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import socket
from collections.abc import Awaitable, Callable

from chaoskit.clock import SYSTEM_CLOCK, Clock
from chaoskit.clusters import ClusterManager
from chaoskit.config.mesh import Mesh
from chaoskit.faults import FaultStates
from chaoskit.proxy import fault_filter, replies
from chaoskit.proxy.exchange import Exchange, parse_hops
from chaoskit.proxy.forwarding import UpstreamSender
from chaoskit.proxy.loops import HOPS_HEADER, ListenerKind, LoopGuard
from chaoskit.proxy.mirror import Mirrors
from chaoskit.proxy.passthrough import passthrough
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.router_filter import RouterFilter
from chaoskit.proxy.services import Services
from chaoskit.records import Record, RecordLog
from chaoskit.rng import Seeds
from chaoskit.routing.decision import ClusterNotFound, Forward, LocalReply, NoRoute, Passthrough
from chaoskit.routing.headers import HeaderContext
from chaoskit.routing.headers import apply as apply_headers
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.router import Listener, Router
from chaoskit.stats import Stats

_HOSTNAME = socket.gethostname()
#: RFC 9562 §5.4: version 4 in bits 48-51, variant 0b10 in bits 64-65.
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_V4 = (0x4 << 76) | (0x2 << 62)
_MESH = Listener.mesh()


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
        client: UpstreamSender,
        *,
        records: RecordLog | None = None,
        stats: Stats | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        stats = stats if stats is not None else Stats()
        self.records = records if records is not None else RecordLog()
        self.snapshot = Snapshot(Mesh(), Router(Mesh()))
        self.services = Services(
            seeds=seeds, client=client, clock=clock, sleep=sleep, stats=stats,
            clusters=ClusterManager(seeds, clock.monotonic, stats=stats),
            fault_states=FaultStates(), loops=LoopGuard(stats), mesh=self.snapshot.mesh,
        )  # fmt: skip
        self.router = RouterFilter(self.services)
        self.mirrors = Mirrors(self.services)

    # What the mitmproxy side and the admin API read.
    @property
    def seeds(self) -> Seeds:
        return self.services.seeds

    @property
    def client(self) -> UpstreamSender:
        return self.services.client

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def stats(self) -> Stats:
        return self.services.stats

    @property
    def clusters(self) -> ClusterManager:
        return self.services.clusters

    @property
    def loops(self) -> LoopGuard:
        return self.services.loops

    # -- configuration ------------------------------------------------------------------

    def set_seed(self, seed: int) -> None:
        """A new seed for every stream (routing, load balancing, faults); state starts over."""
        s = self.services
        s.seeds = s.clusters.seeds = Seeds(seed)
        s.clusters.reset_state()

    def set_mesh(self, mesh: Mesh) -> None:
        """Swap in a new configuration; requests already running finish on the old one."""
        s = self.services
        self.snapshot = Snapshot(mesh, Router(mesh))
        s.mesh = mesh
        s.clusters.update(mesh)
        # A fault whose definition did not change keeps counting (firstN, sequence) across a
        # reload; a changed or new one starts afresh.
        s.fault_states.apply(mesh.upstream_faults, s.clock.monotonic(), keep_unchanged=True)

    def restart_faults(self) -> None:
        """Every UpstreamFault counts from zero again (a new test, a new experiment phase)."""
        s = self.services
        s.fault_states.apply(self.snapshot.mesh.upstream_faults, s.clock.monotonic())

    def own_listener(self, address: str, port: int) -> ListenerKind | None:
        """The kind of this proxy's own listener ``address:port`` reaches, if any."""
        return self.services.loops.own_listener(address, port)

    # -- the request path -----------------------------------------------------------------

    def new_exchange(
        self,
        request: RequestInfo,
        headers: list[tuple[str, str]],
        body: bytes,
        listener: Listener | str = _MESH,
    ) -> Exchange:
        if isinstance(listener, str):
            listener = Listener.parse(listener, request.port)
        clock = self.services.clock
        ex = Exchange(request, headers, body, listener, clock.monotonic(), clock.wall())
        ex.request_id = request.headers.get("x-request-id") or self._new_request_id()
        ex.hops = parse_hops(request.headers.get(HOPS_HEADER))
        return ex

    def _new_request_id(self) -> str:
        """A random (version 4) UUID from the seeded stream: what ``uuid.UUID(int=…,
        version=4)`` gives, without building the object (about 1 % of the proxy's CPU)."""
        bits = self.services.stream("request-id").getrandbits(128)
        bits = (bits & _UUID_CLEAR) | _UUID_V4
        h = f"{bits:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    async def handle(self, ex: Exchange) -> Reply:
        s = self.services
        refusal = s.loops.at_forward_proxy(ex)
        if refusal is not None:
            return refusal
        decision = self.snapshot.router.route(ex.request, ex.listener, s.stream("route"))
        match decision:
            case Forward():
                return await self._forward(ex, decision)
            case Passthrough():
                return await passthrough(s, ex, decision)
            case LocalReply():
                ex.route_name = decision.route_name
                return replies.local_reply(
                    decision.status, decision.body, details=decision.details,
                    headers=decision.headers,
                )  # fmt: skip
            case ClusterNotFound():
                ex.cluster = decision.cluster.name
                ex.host = decision.cluster.host
                return replies.cluster_not_found()
            case NoRoute():
                return replies.no_route()
        raise AssertionError(f"unknown routing decision {decision!r}")  # pragma: no cover

    async def _forward(self, ex: Exchange, fwd: Forward) -> Reply:
        ex.route_name = fwd.route_name
        ex.host = fwd.cluster.host
        ex.cluster = fwd.cluster.name
        # Most routes have no header operations: the variables' context only when one does.
        ctx = (
            self._header_context(ex)
            if fwd.request_headers.ops or fwd.response_headers.ops
            else None
        )
        reply = await self._filters(ex, fwd, ctx)
        if not fwd.response_headers.ops:
            return reply
        return reply.with_headers(apply_headers(fwd.response_headers, list(reply.headers), ctx))

    async def _filters(self, ex: Exchange, fwd: Forward, ctx: HeaderContext | None) -> Reply:
        """The fault filter, then the router filter (the route's response headers apply to
        whatever these answer)."""
        s = self.services
        if fwd.fault is not None:
            stream = f"fault/{fwd.route_name}/{ex.cluster}"
            aborted = await fault_filter.apply(s, ex, fwd.fault, stream)
            if aborted is not None:
                return aborted
        cluster = s.clusters.get(fwd.cluster, ex.request.source.name)
        if cluster is None:
            return replies.cluster_not_found()
        headers = (
            apply_headers(fwd.request_headers, ex.headers, ctx)
            if fwd.request_headers.ops
            else ex.headers
        )
        for mirror in fwd.mirrors:
            self.mirrors.send(ex, fwd, mirror, headers)
        return await self.router.forward(ex, fwd, cluster, headers)

    @staticmethod
    def _header_context(ex: Exchange) -> HeaderContext:
        return HeaderContext(
            hostname=_HOSTNAME,
            downstream_remote_address=ex.request.client_address,
            protocol="HTTP/1.1",
            start_time=datetime.datetime.fromtimestamp(ex.start_wall, tz=datetime.UTC),
            request_headers=ex.request.headers,
        )

    # -- the record -------------------------------------------------------------------------

    def finish(self, ex: Exchange, reply: Reply, *, client_gone: bool = False) -> Record:
        """The request's record, kept and counted (Envoy's ``downstream_rq_*``)."""
        stats = self.services.stats
        now = self.services.clock.monotonic()
        record = ex.to_record(reply, self.records.next_seq(), now, client_gone=client_gone)
        self.records.append(record)
        stats.inc("http.downstream_rq_total")
        if reply.status:
            stats.inc(f"http.downstream_rq_{reply.status // 100}xx")
        if client_gone:
            stats.inc("http.downstream_rq_client_gone")
        return record
