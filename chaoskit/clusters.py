"""Upstream clusters: the endpoints and policy behind each ``outbound|port|subset|host``.

A :class:`Cluster` is what Envoy would build for one (service, port, subset): the endpoints whose
labels select it, the effective DestinationRule policy for that port and subset (Istio's
``MergeTrafficPolicy``) and its own load balancer, seeded from the cluster's name. Runtime state (LB
position, in-flight counts; later breaker and outlier state) lives on the cluster, so it survives a
config swap whenever the cluster's endpoints and policy did not change — that is what lets a hot
reload keep outlier ejections, exactly as Envoy keeps cluster state across xDS updates that do not
touch the cluster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import OrderedDict
from collections.abc import Callable

from chaoskit.clock import SYSTEM_CLOCK
from chaoskit.config.destination_rule import DestinationRule, TrafficPolicy, effective_policy
from chaoskit.config.mesh import Mesh, labels_match
from chaoskit.loadbalancing import make_load_balancer
from chaoskit.loadbalancing.base import LoadBalancer, UpstreamHost
from chaoskit.resilience.circuit_breaker import CircuitBreaker
from chaoskit.resilience.outlier_detection import OutlierDetector
from chaoskit.rng import Seeds
from chaoskit.routing.decision import ClusterKey
from chaoskit.stats import Stats

#: Undeclared caller names (not a WorkloadEntry) whose per-caller cluster state is kept; the
#: least recently used idle one is forgotten beyond it. Callers name themselves freely in the
#: proxy URL's user name, so without a bound every new name would cost a set of clusters.
MAX_UNDECLARED_CALLERS = 256


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What defines an endpoint; two clusters with equal specs and policy share state."""

    address: str
    port: int
    weight: int
    labels: tuple[tuple[str, str], ...]


#: Port protocols Istio sends as HTTP/2 (``protocol.IsHTTP2``: HTTP2, GRPC, GRPC-Web).
HTTP2_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})


class Cluster:
    """One upstream cluster and its live state (used on the proxy loop only)."""

    def __init__(
        self,
        key: ClusterKey,
        specs: tuple[EndpointSpec, ...],
        policy: TrafficPolicy,
        rng: random.Random,
        *,
        original_destination: bool = False,
        default_connect_timeout: float = 10.0,
        scheme: str = "http",
        http2: bool = False,
        now: float = 0.0,
        clock: Callable[[], float] = SYSTEM_CLOCK.monotonic,
    ) -> None:
        self.key = key
        self.name = key.name
        #: The calling workload whose sidecar this cluster belongs to ("" = anonymous).
        self.source = ""
        self.specs = specs
        self.policy = policy
        self.rng = rng
        #: resolution NONE: connect to whatever address the client asked for (ORIGINAL_DST).
        self.original_destination = original_destination
        self.hosts = [UpstreamHost(s.address, s.port, s.weight, dict(s.labels)) for s in specs]
        self.lb: LoadBalancer = make_load_balancer(policy.load_balancer)
        lb = policy.load_balancer
        self.consistent_hash = lb.consistent_hash if lb is not None else None
        #: How to talk to endpoints: TLS when the service port says HTTPS/TLS or the rule
        #: originates TLS (``tls.mode: SIMPLE|MUTUAL``), plain HTTP otherwise.
        self.scheme = scheme
        #: Speak HTTP/2 to endpoints: the port's protocol is HTTP2, GRPC or GRPC-Web, or the
        #: rule says ``h2UpgradePolicy: UPGRADE`` (istio/istio ``protocol.IsHTTP2``).
        self.http2 = http2
        self.active_requests = 0
        tcp = policy.connection_pool.tcp if policy.connection_pool is not None else None
        # DestinationRule connectTimeout, else the mesh's (MeshConfig connectTimeout, 10 s).
        self.connect_timeout = (
            tcp.connect_timeout
            if tcp is not None and tcp.connect_timeout is not None
            else default_connect_timeout
        )

        pool = policy.connection_pool
        #: Envoy's circuit breakers for this cluster (connectionPool limits).
        self.breaker = CircuitBreaker(pool, policy.retry_budget, clock=clock)
        #: Tickets of requests waiting in the pending queue → what wakes them.
        self.waiters: dict[int, asyncio.Future[None]] = {}
        http = pool.http if pool is not None else None
        #: ``maxRequestsPerConnection: 1`` disables upstream keep-alive.
        self.close_connections = http is not None and http.max_requests_per_connection == 1
        od = policy.outlier_detection
        self.outlier = (
            OutlierDetector(od, start=now, hosts=[h.key for h in self.hosts]) if od else None
        )

    def healthy_hosts(self, now: float) -> list[UpstreamHost]:
        """Hosts to balance over: outlier-ejected ones are left out (panic mode aside)."""
        if self.outlier is None:
            return list(self.hosts)
        self.outlier.sweep(now)
        return self.outlier.healthy(self.hosts)

    def host_health(self, key: str) -> str:
        """Envoy's ``/clusters`` health flag for one host."""
        if self.outlier is not None and self.outlier.is_ejected(key):
            return "/failed_outlier_check"
        return "healthy"

    def idle(self) -> bool:
        """Nothing in flight: no active, queued or retrying request holds this cluster's state,
        so forgetting it loses only history (LB position, counters, ejections)."""
        breaker = self.breaker
        return not (
            self.active_requests
            or self.waiters
            or breaker.active_requests
            or breaker.pending_requests
            or breaker.active_retries
            or any(h.active_requests for h in self.hosts)
        )

    @property
    def label(self) -> str:
        """The cluster name, prefixed with the calling workload when there is one."""
        return f"{self.source}/{self.name}" if self.source else self.name

    def same_shape(self, specs: tuple[EndpointSpec, ...], policy: TrafficPolicy) -> bool:
        return self.specs == specs and self.policy == policy


def _merged_rule(rules: tuple[DestinationRule, ...]) -> DestinationRule | None:
    """Istio merges DRs for one host: subsets concatenated (first name wins), first policy wins."""
    if not rules:
        return None
    if len(rules) == 1:
        return rules[0]
    subsets, seen = [], set()
    for dr in rules:
        for s in dr.subsets:
            if s.name not in seen:
                seen.add(s.name)
                subsets.append(s)
    policy = next((dr.traffic_policy for dr in rules if dr.traffic_policy is not None), None)
    return dataclasses.replace(rules[0], subsets=tuple(subsets), traffic_policy=policy)


class ClusterManager:
    """Builds clusters on first use from the current mesh and keeps their state across swaps.

    State is per calling workload (Istio gives every client sidecar its own clusters). Callers
    declared as WorkloadEntries, and the anonymous caller, keep theirs for as long as the
    configuration declares them: that is bounded by the configuration. Any other name a client
    puts in the proxy URL gets state too, but only the :data:`MAX_UNDECLARED_CALLERS` most
    recently used such names keep it; beyond that the least recently used *idle* one (no
    request active, queued or retrying) is forgotten and starts fresh when it comes back
    (stat ``cluster_manager.caller_state_evicted``). A busy caller is never evicted, so the
    bound can be exceeded by at most the callers with requests in flight.
    """

    def __init__(
        self,
        seeds: Seeds,
        now: Callable[[], float] = SYSTEM_CLOCK.monotonic,
        *,
        stats: Stats | None = None,
        max_undeclared_callers: int = MAX_UNDECLARED_CALLERS,
    ) -> None:
        self.seeds = seeds
        self.now = now
        self.mesh = Mesh()
        self.stats = stats if stats is not None else Stats()
        self.max_undeclared_callers = max_undeclared_callers
        # Keyed by (caller, cluster): in Istio every client sidecar has its own clusters, so LB
        # position, circuit breakers and outlier ejections are per calling workload.
        self._clusters: dict[tuple[str, ClusterKey], Cluster] = {}
        self._retired: dict[tuple[str, ClusterKey], Cluster] = {}
        #: Undeclared callers with state in ``_clusters``, least recently used first, each
        #: with the cluster keys it holds there.
        self._undeclared: OrderedDict[str, set[ClusterKey]] = OrderedDict()

    def update(self, mesh: Mesh) -> None:
        """A new configuration: clusters are rebuilt lazily, reusing state when unchanged."""
        self.mesh = mesh
        self._retired = self._clusters
        self._clusters = {}
        self._undeclared.clear()

    def reset_state(self) -> None:
        """Forget all runtime state (between tests): LB positions, counters, ejections."""
        self._clusters.clear()
        self._retired.clear()
        self._undeclared.clear()

    def clusters(self) -> list[Cluster]:
        return list(self._clusters.values())

    def get(self, key: ClusterKey, source: str = "") -> Cluster | None:
        """The cluster for ``key``; ``None`` when the host or subset does not exist (NC)."""
        slot = (source, key)
        cluster = self._clusters.get(slot)
        if cluster is not None:
            if source in self._undeclared:
                self._undeclared.move_to_end(source)
            return cluster
        built = self._build(key)
        if built is None:
            return None
        specs, policy, original = built
        old = self._retired.pop(slot, None)
        if (
            old is not None
            and old.same_shape(specs, policy)
            and old.original_destination == original
        ):
            cluster = old
        else:
            cluster = Cluster(
                key,
                specs,
                policy,
                self.seeds.stream(f"lb/{key.name}"),
                original_destination=original,
                default_connect_timeout=self.mesh.defaults.connect_timeout,
                scheme=self._scheme(key, policy),
                http2=self._http2(key, policy),
                now=self.now(),
                clock=self.now,
            )
        cluster.source = source
        self._clusters[slot] = cluster
        if source and source not in self.mesh.workloads_by_name:
            self._undeclared.setdefault(source, set()).add(key)
            self._undeclared.move_to_end(source)
            self._evict_idle(keep=source)
        return cluster

    def _evict_idle(self, keep: str) -> None:
        """Forget least recently used idle undeclared callers until within the bound."""
        excess = len(self._undeclared) - self.max_undeclared_callers
        if excess <= 0:
            return
        victims: list[str] = []
        for name, keys in self._undeclared.items():  # oldest first; a busy caller is skipped
            if len(victims) == excess or name == keep:
                break
            if all(self._clusters[(name, k)].idle() for k in keys):
                victims.append(name)
        for name in victims:
            for k in self._undeclared.pop(name):
                del self._clusters[(name, k)]
        if victims:
            self.stats.inc("cluster_manager.caller_state_evicted", len(victims))

    def _scheme(self, key: ClusterKey, policy: TrafficPolicy) -> str:
        svc = self.mesh.defined_by(key.host, key.service_entry)
        port = svc.entry.port(key.port) if svc is not None else None
        tls_mode = policy.tls.mode if policy.tls is not None else None
        if (port is not None and port.protocol in ("HTTPS", "TLS")) or tls_mode in (
            "SIMPLE",
            "MUTUAL",
        ):
            return "https"
        return "http"

    def _http2(self, key: ClusterKey, policy: TrafficPolicy) -> bool:
        svc = self.mesh.defined_by(key.host, key.service_entry)
        port = svc.entry.port(key.port) if svc is not None else None
        if port is not None and (port.protocol or "").upper() in HTTP2_PROTOCOLS:
            return True
        pool = policy.connection_pool
        http = pool.http if pool is not None else None
        return http is not None and http.effective_h2_upgrade_policy == "UPGRADE"

    def _build(
        self, key: ClusterKey
    ) -> tuple[tuple[EndpointSpec, ...], TrafficPolicy, bool] | None:
        svc = self.mesh.defined_by(key.host, key.service_entry)
        if svc is None:
            return None
        rule = _merged_rule(self.mesh.destination_rules_for(key.host))
        selector: dict[str, str] = {}
        if key.subset is not None:
            subset = next((s for s in rule.subsets if s.name == key.subset), None) if rule else None
            if subset is None:
                return None
            selector = dict(subset.labels)
        policy = effective_policy(rule, key.port, key.subset)
        entry = svc.entry
        port = entry.port(key.port)
        lb = policy.load_balancer
        passthrough = lb is not None and lb.consistent_hash is None and lb.simple == "PASSTHROUGH"
        if entry.resolution == "NONE" or passthrough:
            return (), policy, True
        specs: list[EndpointSpec] = []
        if not entry.endpoints and entry.resolution in ("DNS", "DNS_ROUND_ROBIN"):
            specs.append(EndpointSpec(key.host, key.port, 1, ()))
        for ep in entry.endpoints:
            if ep.address is None or not labels_match(selector, ep.labels):
                continue
            ep_port = ep.port_for(port) if port is not None else key.port
            specs.append(
                EndpointSpec(
                    ep.address, ep_port, ep.effective_weight, tuple(sorted(ep.labels.items()))
                )
            )
        return tuple(specs), policy, False
