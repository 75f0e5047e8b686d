"""TCP routing: which cluster a new connection to a service's TCP port goes to (pure).

A sidecar's outbound listener for a TCP service port (istio/istio
``pilot/pkg/networking/core/tls.go``, ``buildSidecarOutboundTCPFilterChainOpts``) is built from
every VirtualService bound to ``mesh`` whose hosts cover the service, in configuration order:

- the first ``tcp[]`` rule whose ``match`` is empty, or that has an entry selecting this proxy
  (``matchTCP``: ``port`` is the service port, ``sourceLabels`` are a subset of the caller's
  labels, ``sourceNamespace`` is its namespace, ``gateways`` is empty or lists ``mesh``), takes
  every connection;
- an entry with ``destinationSubnets`` is a runtime match on the IP the client dialled; a
  chaoskit client dials a local listener, not the service's address, so such an entry never
  selects (docs/istio-compatibility.md);
- no rule selected (or no VirtualService): the service's own cluster
  ``outbound|<port>||<host>`` (Istio's default filter chain, not a "no route").

The rule's destination is picked per **connection** among its weighted destinations
(``networkfilter.go``: a single destination takes everything, otherwise destinations with weight
0 are dropped and Envoy's TCP proxy draws once per connection). A service the caller cannot see
(``exportTo``, Sidecar egress) gets no listener of its own: its traffic falls to the catch-all,
``PassthroughCluster`` under ALLOW_ANY, ``BlackHoleCluster`` under REGISTRY_ONLY.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import ClassVar

from chaoskit.config.hosts import matches as host_matches
from chaoskit.config.mesh import Mesh, Service
from chaoskit.config.mesh_config import REGISTRY_ONLY
from chaoskit.config.virtual_service import MESH, L4Match, L4Route, VirtualService
from chaoskit.routing.actions import pick
from chaoskit.routing.decision import PASSTHROUGH_CLUSTER, ClusterKey
from chaoskit.routing.request import Workload
from chaoskit.routing.scope import (
    Scope,
    host_candidates,
    labels_match,
    outbound_policy,
    service_ports,
    sidecar_for,
)

BLACK_HOLE_CLUSTER = "BlackHoleCluster"


@dataclasses.dataclass(frozen=True, slots=True)
class TcpForward:
    """Relay the connection to an endpoint of ``cluster``; ``rule`` is ``None`` for the
    service's default route."""

    cluster: ClusterKey
    virtual_service: VirtualService | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    rule: L4Route | None = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class TcpPassthrough:
    """ALLOW_ANY for a service this caller cannot see: connect to ``host:port`` as dialled."""

    cluster_name: ClassVar[str] = PASSTHROUGH_CLUSTER

    host: str
    port: int


@dataclasses.dataclass(frozen=True, slots=True)
class TcpBlackHole:
    """REGISTRY_ONLY for a service this caller cannot see: a cluster with no endpoint, so the
    connection is closed with flag ``UH``."""

    cluster_name: ClassVar[str] = BLACK_HOLE_CLUSTER
    flags: ClassVar[str] = "UH"


@dataclasses.dataclass(frozen=True, slots=True)
class TcpNoRoute:
    """No filter chain: the listener's service or port is gone from the configuration; the
    connection is closed with flag ``NR``."""

    flags: ClassVar[str] = "NR"


@dataclasses.dataclass(frozen=True, slots=True)
class TcpClusterNotFound:
    """The selected destination names a host, port or subset with no cluster (flag ``NC``)."""

    flags: ClassVar[str] = "NC"

    cluster: ClusterKey
    virtual_service: VirtualService | None = dataclasses.field(
        default=None, repr=False, compare=False
    )


TcpDecision = TcpForward | TcpPassthrough | TcpBlackHole | TcpNoRoute | TcpClusterNotFound


def find_tcp_service(mesh: Mesh, host: str, port: int, namespace: str) -> Service | None:
    """The service ``host`` names for a caller in ``namespace`` (short names expanded as a
    sidecar's DNS would), when ``port`` is one of its ports."""
    for name in host_candidates(host, namespace):
        svc = mesh.find_service(name)
        if svc is not None:
            return svc if port in service_ports(svc) else None
    return None


def selects(m: L4Match, port: int, source: Workload) -> bool:
    """Istio's ``matchTCP`` for a sidecar (the ``mesh`` gateway), plus the runtime
    ``destinationSubnets`` that a chaoskit listener never satisfies (module docstring)."""
    if m.destination_subnets:
        return False
    if m.gateways and MESH not in m.gateways:
        return False
    if m.port is not None and m.port != port:
        return False
    if not labels_match(m.labels, source.labels):
        return False
    return m.source_namespace is None or m.source_namespace == source.namespace


def rule_selects(rule: L4Route, port: int, source: Workload) -> bool:
    """A rule without ``match`` takes every connection; otherwise any selecting entry does."""
    return not rule.match or any(selects(m, port, source) for m in rule.match)


def _virtual_services(mesh: Mesh, host: str, scope: Scope) -> Iterator[VirtualService]:
    """Mesh VirtualServices with TCP rules for ``host`` visible to this caller, in order."""
    for vs in mesh.virtual_services:
        if not vs.tcp or MESH not in vs.gateways:
            continue
        pattern = next((h for h in vs.fqdn_hosts if host_matches(h, host)), None)
        if pattern is not None and scope.host_visible(pattern, vs.namespace, vs.export_to):
            yield vs


def tcp_route(
    mesh: Mesh, host: str, port: int, source: Workload, rng: random.Random
) -> TcpDecision:
    """Decide where one new connection from ``source`` to ``host:port`` goes.

    ``rng`` is drawn from only when the selected rule has several destinations (one draw per
    connection), so the same seed and the same connection sequence give the same clusters.
    """
    svc = find_tcp_service(mesh, host, port, source.namespace)
    if svc is None:
        return TcpNoRoute()
    sidecar = sidecar_for(mesh.sidecars, source)
    scope = Scope(mesh, source.namespace, sidecar, port)
    if not scope.service_visible(svc, port):
        if outbound_policy(sidecar, mesh.defaults).mode == REGISTRY_ONLY:
            return TcpBlackHole()
        return TcpPassthrough(host, port)
    for vs in _virtual_services(mesh, svc.host, scope):
        for rule in vs.tcp:
            if rule.route and rule_selects(rule, port, source):
                dest = pick(rule.route, rng)
                cluster, found = scope.cluster(dest.destination)
                if not found:
                    return TcpClusterNotFound(cluster, vs)
                return TcpForward(cluster, vs, rule)
    return TcpForward(ClusterKey(svc.host, port))
