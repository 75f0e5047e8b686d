from chaoskit.clusters import MAX_UNDECLARED_CALLERS, ClusterManager
from chaoskit.config import load_text, validate
from chaoskit.rng import Seeds
from chaoskit.routing.decision import ClusterKey

from .config.helpers import SERVICES

HOST = "reviews.default.svc.cluster.local"


def manager(*extra: str) -> ClusterManager:
    v = validate([load_text(SERVICES), *(load_text(e) for e in extra)])
    assert v.ok, [str(i) for i in v.issues.errors]
    m = ClusterManager(Seeds(1))
    m.update(v.mesh)
    return m


def test_subset_clusters_select_endpoints_by_label():
    m = manager()
    all_hosts = m.get(ClusterKey(HOST, 9080, None))
    v2 = m.get(ClusterKey(HOST, 9080, "v2"))
    assert all_hosts is not None and v2 is not None
    assert [h.key for h in all_hosts.hosts] == [
        "127.0.0.1:9081",
        "127.0.0.1:9082",
        "127.0.0.1:9083",
    ]
    assert [h.key for h in v2.hosts] == ["127.0.0.1:9082"]
    assert v2.name == f"outbound|9080|v2|{HOST}"


def test_unknown_host_or_subset_is_none():
    m = manager()
    assert m.get(ClusterKey("nope.default.svc.cluster.local", 80, None)) is None
    assert m.get(ClusterKey(HOST, 9080, "v9")) is None


def test_state_survives_an_unchanged_reload_and_resets_on_change():
    m = manager()
    before = m.get(ClusterKey(HOST, 9080, "v1"))
    assert before is not None
    before.hosts[0].active_requests = 3
    v = validate([load_text(SERVICES)])
    m.update(v.mesh)
    assert m.get(ClusterKey(HOST, 9080, "v1")) is before
    changed = validate(
        [
            load_text(SERVICES),
            load_text(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
                "spec: {host: reviews, trafficPolicy: {loadBalancer: {simple: RANDOM}}, "
                "subsets: [{name: v1, labels: {version: v1}}]}\n"
            ),
        ]
    )
    m.update(changed.mesh)
    assert m.get(ClusterKey(HOST, 9080, "v1")) is not before


def test_connect_timeout_scheme_and_passthrough():
    m = manager(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings}\n"
        "spec: {host: ratings, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 250ms}}, "
        "tls: {mode: SIMPLE}}}\n",
        "apiVersion: chaoskit.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {connectTimeout: 2s}\n",
    )
    ratings = m.get(ClusterKey("ratings.default.svc.cluster.local", 9080, None))
    reviews = m.get(ClusterKey(HOST, 9080, None))
    assert ratings is not None and reviews is not None
    assert (ratings.connect_timeout, ratings.scheme) == (0.25, "https")
    assert (reviews.connect_timeout, reviews.scheme) == (2.0, "http")
    p = manager(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r2}\n"
        "spec: {host: ratings, trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}}\n"
    )
    cluster = p.get(ClusterKey("ratings.default.svc.cluster.local", 9080, None))
    assert cluster is not None and cluster.original_destination and cluster.hosts == []


# -- per-caller state is bounded -----------------------------------------------------------

WORKLOAD = (
    "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: productpage}\n"
    "spec: {labels: {app: productpage}}\n"
)


def test_undeclared_caller_names_cannot_grow_cluster_state_without_bound():
    """Callers name themselves in the proxy URL: 30k names keep at most the LRU bound."""
    m = manager(WORKLOAD)
    key = ClusterKey(HOST, 9080, None)
    declared = m.get(key, "productpage")
    anonymous = m.get(key)
    assert declared is not None and anonymous is not None
    for i in range(30_000):
        assert m.get(key, f"caller-{i}") is not None
    assert len(m.clusters()) == 2 + MAX_UNDECLARED_CALLERS
    assert m.stats.get("cluster_manager.caller_state_evicted") == 30_000 - MAX_UNDECLARED_CALLERS
    assert len(m.clusters()) == 2 + MAX_UNDECLARED_CALLERS
    # WorkloadEntries (bounded by the config) and the anonymous caller keep their state.
    assert m.get(key, "productpage") is declared and m.get(key) is anonymous


def test_an_evicted_caller_starts_fresh_and_a_recent_one_keeps_its_state():
    m = manager()
    m.max_undeclared_callers = 2
    key = ClusterKey(HOST, 9080, None)
    a, b = m.get(key, "a"), m.get(key, "b")
    assert a is not None and b is not None
    m.get(key, "a")  # "a" is now the most recently used: "b" goes first
    m.get(key, "c")
    assert m.get(key, "a") is a
    fresh = m.get(key, "b")
    assert fresh is not None and fresh is not b and fresh.source == "b"


def test_a_busy_caller_is_never_evicted():
    """Forgetting state a request still holds would split its circuit breaker in two."""
    m = manager()
    m.max_undeclared_callers = 1
    key, v1 = ClusterKey(HOST, 9080, None), ClusterKey(HOST, 9080, "v1")
    busy = m.get(key, "busy")
    assert busy is not None and m.get(v1, "busy") is not None
    ticket = busy.breaker.admit()
    for name in ("x", "y", "z"):
        m.get(key, name)
    assert m.get(key, "busy") is busy  # kept: a request is active
    assert len(m.clusters()) == 3  # busy's two clusters + the newest idle caller
    busy.breaker.release(ticket.ticket)  # type: ignore[union-attr]
    m.get(key, "w")
    assert m.get(key, "busy") is not busy


def test_a_shared_host_builds_each_cluster_from_the_entry_its_key_names():
    def entry(ns: str, port: int) -> str:
        return (
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
            f"metadata: {{name: api, namespace: {ns}}}\n"
            'spec: {hosts: [api.example.com], exportTo: ["."], resolution: STATIC, '
            "ports: [{number: 80, name: http, protocol: HTTP}], "
            f"endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]}}\n"
        )

    m = manager(entry("a", 9101), entry("b", 9102))
    a = m.get(ClusterKey("api.example.com", 80, None, "ServiceEntry/a/api"), "x")
    b = m.get(ClusterKey("api.example.com", 80, None, "ServiceEntry/b/api"), "x")
    assert a is not None and b is not None and a is not b
    assert [h.key for h in a.hosts] == ["127.0.0.1:9101"]
    assert [h.key for h in b.hosts] == ["127.0.0.1:9102"]
    assert a.name == b.name == "outbound|80||api.example.com"
