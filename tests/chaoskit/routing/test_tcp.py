"""TCP route choice: Istio's sidecar outbound TCP filter chains (istio/istio
``pilot/pkg/networking/core/tls.go``, ``buildSidecarOutboundTCPFilterChainOpts`` and
``matchTCP``; weighted clusters in ``networkfilter.go``)."""

from __future__ import annotations

import random
from collections import Counter

from chaoskit.config.mesh import Mesh
from chaoskit.routing.decision import ClusterKey
from chaoskit.routing.request import ANONYMOUS, Workload
from chaoskit.routing.tcp import (
    TcpBlackHole,
    TcpClusterNotFound,
    TcpDecision,
    TcpForward,
    TcpNoRoute,
    TcpPassthrough,
    tcp_route,
)

from .helpers import build, doc, vs

REDIS = "redis.default.svc.cluster.local"
SE = """
    hosts: [redis]
    ports: [{number: 6379, name: tcp-redis, protocol: TCP}%s]
    resolution: STATIC
    endpoints:
    - {address: 127.0.0.1, ports: {tcp-redis: 7001}, labels: {version: v1}}
    - {address: 127.0.0.1, ports: {tcp-redis: 7002}, labels: {version: v2}}
    """
REDIS_SE = doc("ServiceEntry", "redis", SE % "")
#: The same service with a second TCP port.
TWO_PORTS = doc("ServiceEntry", "redis", SE % ", {number: 6380, name: tcp-b}")
REDIS_DR = doc(
    "DestinationRule",
    "redis",
    "host: redis\nsubsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]",
)
CANARY = Workload("canary", labels={"app": "checkout", "track": "canary"})


def mesh(*texts: str, se: str = REDIS_SE) -> Mesh:
    return build(se, REDIS_DR, *texts, services=False)


def decide(m: Mesh, *, port: int = 6379, source: Workload = ANONYMOUS, seed: int = 0,
           host: str = "redis") -> TcpDecision:  # fmt: skip
    return tcp_route(m, host, port, source, random.Random(seed))


def subset_of(decision: TcpDecision) -> str | None:
    assert isinstance(decision, TcpForward), decision
    return decision.cluster.subset


def test_no_virtual_service_is_the_service_cluster() -> None:
    assert decide(mesh()) == TcpForward(ClusterKey(REDIS, 6379))
    # ...by any of the names a sidecar's DNS resolves for a client in "default"
    assert decide(mesh(), host="redis.default.svc.cluster.local") == decide(mesh())


def test_weights_pick_per_connection_from_the_seeded_stream() -> None:
    m = mesh(vs("redis", """
        hosts: [redis]
        tcp:
        - route:
          - {destination: {host: redis, subset: v1}, weight: 80}
          - {destination: {host: redis, subset: v2}, weight: 20}
        """))  # fmt: skip
    rng = random.Random(7)
    picks = Counter(subset_of(tcp_route(m, "redis", 6379, ANONYMOUS, rng)) for _ in range(2000))
    assert 1500 < picks["v1"] < 1700 and picks["v1"] + picks["v2"] == 2000
    again = random.Random(7)
    replay = [subset_of(tcp_route(m, "redis", 6379, ANONYMOUS, again)) for _ in range(50)]
    first = random.Random(7)
    assert replay == [subset_of(tcp_route(m, "redis", 6379, ANONYMOUS, first)) for _ in range(50)]


def test_a_zero_weight_destination_gets_nothing() -> None:
    m = mesh(vs("redis", """
        hosts: [redis]
        tcp:
        - route:
          - {destination: {host: redis, subset: v1}, weight: 100}
          - {destination: {host: redis, subset: v2}, weight: 0}
        """))  # fmt: skip
    assert {subset_of(decide(m, seed=s)) for s in range(100)} == {"v1"}


def test_first_selecting_rule_wins_and_port_matches_are_selectors() -> None:
    rules = vs("redis", """
        hosts: [redis]
        tcp:
        - match: [{port: 6380}]
          route: [{destination: {host: redis, port: {number: 6380}}}]
        - route: [{destination: {host: redis, subset: v2, port: {number: 6379}}}]
        """)  # fmt: skip
    m = mesh(rules, se=TWO_PORTS)
    assert decide(m, port=6380) == TcpForward(ClusterKey(REDIS, 6380))
    assert decide(m, port=6379) == TcpForward(ClusterKey(REDIS, 6379, "v2"))


def test_source_labels_and_namespace_select_the_caller() -> None:
    m = mesh(vs("redis", """
        hosts: [redis]
        tcp:
        - match: [{sourceLabels: {track: canary}, sourceNamespace: default}]
          route: [{destination: {host: redis, subset: v2}}]
        """))  # fmt: skip
    assert subset_of(decide(m, source=CANARY)) == "v2"
    # Nothing selects an anonymous caller: the service's own cluster (Istio adds it as the
    # default filter chain), not a "no route".
    assert decide(m) == TcpForward(ClusterKey(REDIS, 6379))
    other_ns = Workload("canary", namespace="prod", labels=dict(CANARY.labels))
    assert decide(m, source=other_ns, host="redis.default") == TcpForward(ClusterKey(REDIS, 6379))


EDGE = doc(
    "Gateway",
    "edge",
    "selector: {istio: ingressgateway}\n"
    "servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]",
)


def test_gateways_and_destination_subnets_in_a_match() -> None:
    m = mesh(EDGE, vs("redis", """
        hosts: [redis]
        gateways: [mesh, edge]
        tcp:
        - match: [{gateways: [edge]}]
          route: [{destination: {host: redis, subset: v1}}]
        - match: [{destinationSubnets: [10.0.0.0/8]}]
          route: [{destination: {host: redis, subset: v1}}]
        - match: [{gateways: [mesh]}]
          route: [{destination: {host: redis, subset: v2}}]
        """))  # fmt: skip
    assert subset_of(decide(m)) == "v2"


def test_failures_no_route_no_cluster() -> None:
    m = mesh(
        vs("redis", "hosts: [redis]\ntcp:\n- route: [{destination: {host: redis, subset: v9}}]")
    )
    assert decide(m) == TcpClusterNotFound(ClusterKey(REDIS, 6379, "v9"))
    assert decide(m, port=7000) == TcpNoRoute()
    assert decide(m, host="memcached") == TcpNoRoute()
    assert decide(Mesh()) == TcpNoRoute()


def test_a_service_the_caller_cannot_see_falls_to_the_catch_all() -> None:
    hidden = doc("ServiceEntry", "redis", """
        hosts: [redis.cache.svc.cluster.local]
        exportTo: ["."]
        ports: [{number: 6379, name: tcp-redis, protocol: TCP}]
        resolution: STATIC
        endpoints: [{address: 127.0.0.1, ports: {tcp-redis: 7001}}]
        """, namespace="cache")  # fmt: skip
    registry_only = doc("Sidecar", "default", "outboundTrafficPolicy: {mode: REGISTRY_ONLY}")
    host = "redis.cache.svc.cluster.local"
    assert decide(build(hidden, services=False), host=host) == TcpPassthrough(host, 6379)
    assert decide(build(hidden, registry_only, services=False), host=host) == TcpBlackHole()
