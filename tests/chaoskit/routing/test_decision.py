"""Decision types: Envoy's cluster names and local-reply constants."""

from __future__ import annotations

from chaoskit.routing.decision import (
    ClusterKey,
    ClusterNotFound,
    Forward,
    LocalReply,
    NoRoute,
    Passthrough,
)


def test_cluster_key_names_clusters_like_istio() -> None:
    key = ClusterKey("reviews.default.svc.cluster.local", 9080, "v1")
    assert key.name == "outbound|9080|v1|reviews.default.svc.cluster.local"
    assert str(ClusterKey("httpbin.org", 80)) == "outbound|80||httpbin.org"
    assert sorted([ClusterKey("b", 1), ClusterKey("a", 2)])[0].host == "a"


def test_local_reply_constants() -> None:
    nr = NoRoute()
    assert (nr.status, nr.body, nr.headers, nr.flags, nr.details, nr.route_name) == (
        404,
        b"",
        (),
        "NR",
        "route_not_found",
        "",
    )
    nc = ClusterNotFound(ClusterKey("x", 1))
    assert (nc.status, nc.body, nc.flags, nc.details, nc.headers) == (
        503,
        b"",
        "NC",
        "cluster_not_found",
        (),
    )
    p = Passthrough("example.com", 443)
    assert (p.route_name, p.cluster_name, p.timeout, p.retry) == (
        "allow_any",
        "PassthroughCluster",
        None,
        None,
    )
    assert LocalReply(502, b"", (), "direct_response", "block_all").flags == ""


def test_context_fields_are_left_out_of_equality() -> None:
    a = Forward(ClusterKey("h", 1), None, None, "r", "/", "h")
    b = Forward(ClusterKey("h", 1), object(), object(), "r", "/", "h")  # type: ignore[arg-type]
    assert a == b
    assert "virtual_service" not in repr(b)
