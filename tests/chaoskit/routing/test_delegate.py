"""VirtualService delegation, merged as Istio's MergeHTTPRoutes does."""

from __future__ import annotations

from chaoskit.routing import ClusterKey, Forward, Listener, NoRoute, Router
from chaoskit.routing.delegate import (
    expand_delegates,
    has_conflict,
    merge_matches,
    string_match_conflict,
)

from .helpers import REVIEWS, build, doc, entry, route, vs

GATEWAY = doc(
    "Gateway",
    "gw",
    """
    selector: {istio: ingressgateway}
    servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ["*.example.com"]
    """,
)
ROOT = vs(
    "root",
    """
    hosts: [shop.example.com]
    gateways: [gw]
    http:
    - name: reviews
      match: [{uri: {prefix: /reviews}}]
      delegate: {name: reviews-delegate, namespace: team}
      timeout: 3s
    - match: [{uri: {prefix: /missing}}]
      delegate: {name: nobody}
    - route: [{destination: {host: ratings}}]
    """,
)
DELEGATE = vs(
    "reviews-delegate",
    f"""
    http:
    - name: v2
      match: [{{uri: {{prefix: /reviews/v2}}}}]
      route: [{{destination: {{host: {REVIEWS}, subset: v2}}}}]
    - match: [{{uri: {{prefix: /other}}}}]
      route: [{{destination: {{host: {REVIEWS}, subset: v3}}}}]
    - route: [{{destination: {{host: {REVIEWS}, subset: v1}}}}]
      timeout: 1s
    """,
    namespace="team",
)


def test_delegated_rules_on_a_gateway() -> None:
    router = Router(build(GATEWAY, ROOT, DELEGATE, strict=False))
    gw = Listener.gateway(8080)
    v2 = route(router, "http://shop.example.com:8080/reviews/v2/1", gw)
    assert isinstance(v2, Forward)
    assert (v2.cluster, v2.route_name, v2.timeout) == (
        ClusterKey(REVIEWS, 9080, "v2"),
        "reviews-v2",
        3.0,
    )
    v1 = route(router, "http://shop.example.com:8080/reviews/x", gw)
    assert isinstance(v1, Forward) and (v1.cluster.subset, v1.timeout, v1.route_name) == (
        "v1",
        1.0,
        "reviews",
    )
    # /other conflicts with the root's /reviews prefix: that delegate rule is dropped.
    other = route(router, "http://shop.example.com:8080/other", gw)
    assert isinstance(other, Forward) and other.cluster.host.startswith("ratings")
    assert isinstance(route(router, "http://shop.example.com:8080/missing", gw), Forward)  # skipped


def test_expand_leaves_plain_virtual_services_alone() -> None:
    mesh = build(ROOT, DELEGATE, strict=False)
    expanded = {v.name: v for v in expand_delegates(mesh.virtual_services)}
    assert expanded["reviews-delegate"] is next(
        v for v in mesh.virtual_services if v.name == "reviews-delegate"
    )
    assert [r.name for r in expanded["root"].http] == ["reviews-v2", "reviews", None]


def test_delegate_not_exported_to_the_root_namespace_is_ignored() -> None:
    private = DELEGATE.replace("http:\n", 'exportTo: ["."]\n  http:\n', 1)
    router = Router(build(GATEWAY, ROOT, private, strict=False))
    d = route(router, "http://shop.example.com:8080/reviews/v2", Listener.gateway(8080))
    assert isinstance(d, Forward) and d.cluster.host.startswith("ratings")
    assert isinstance(
        route(router, "http://nope.example.com:8080/", Listener.gateway(8080)), NoRoute
    )


def test_match_merging_and_conflicts() -> None:
    root = entry("name: r\nuri: {prefix: /a}\nheaders: {x: {exact: '1'}}")
    leaf = entry("name: l\nuri: {prefix: /a/b}\nheaders: {y: {exact: '2'}}")
    (merged,) = merge_matches((root,), (leaf,)) or ()
    assert merged.name == "r-l" and merged.uri == leaf.uri
    assert set(merged.headers) == {"x", "y"}
    assert merge_matches((), (leaf,)) == (leaf,)
    assert merge_matches((root,), ()) == (root,)
    assert merge_matches((root,), (entry("uri: {prefix: /b}"),)) is None
    assert has_conflict(root, entry("uri: {prefix: /a}\nignoreUriCase: true"))
    assert has_conflict(entry("port: 80"), entry("port: 81"))
    assert has_conflict(entry("sourceNamespace: a"), entry("uri: {prefix: /}"))
    assert has_conflict(entry("sourceLabels: {app: a}"), entry("sourceLabels: {app: b}"))
    assert has_conflict(entry("gateways: [mesh]"), entry("gateways: [mesh, gw]"))
    assert not has_conflict(entry("gateways: [mesh, gw]"), entry("gateways: [mesh]"))
    assert has_conflict(entry("headers: {x: {exact: '1'}}"), entry("headers: {x: {exact: '2'}}"))


def test_string_match_conflict_table() -> None:
    def uri(text: str) -> object:
        return entry(f"uri: {text}").uri

    cases = [
        ("{exact: /a}", "{exact: /a}", False),
        ("{exact: /a}", "{exact: /b}", True),
        ("{exact: /a}", "{prefix: /a}", True),
        ("{prefix: /a}", "{prefix: /a/b}", False),
        ("{prefix: /a/b}", "{prefix: /a}", True),
        ("{prefix: /a}", "{exact: /a/x}", False),
        ("{regex: '/a.*'}", "{prefix: /a}", True),
        ("{prefix: /a}", "{regex: '/a.*'}", True),
    ]
    for root, leaf, expected in cases:
        assert string_match_conflict(uri(root), uri(leaf)) is expected, (root, leaf)  # type: ignore[arg-type]
    assert not string_match_conflict(None, uri("{prefix: /a}"))  # type: ignore[arg-type]
