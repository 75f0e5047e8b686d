from chaoskit.clusters import ClusterManager
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
