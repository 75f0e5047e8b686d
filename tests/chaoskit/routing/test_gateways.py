"""Gateway listeners: binding, host intersection, merging, catch-all ordering (``gateway.go``)."""

from __future__ import annotations

import pytest

from chaoskit.routing import ClusterKey, Forward, Listener, LocalReply, NoRoute, Router, Workload
from chaoskit.routing.gateways import build_listeners

from .helpers import REVIEWS, build, doc, route, vs

GW = Listener.gateway(8080)


def gateway(
    name: str = "gw", hosts: str = '["*.example.com"]', *, port: int = 8080, extra: str = ""
) -> str:
    return doc(
        "Gateway",
        name,
        f"""
        selector: {{istio: ingressgateway}}
        servers:
        - port: {{number: {port}, name: http, protocol: HTTP}}
          hosts: {hosts}
          {extra}
        """,
    )


def cluster(d: object) -> ClusterKey:
    assert isinstance(d, Forward), d
    return d.cluster


# -- the Bookinfo gateway -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/productpage", "/static/css/a.css", "/login", "/logout", "/api/v1/products/0"]
)
def test_bookinfo_gateway_routes_the_app(path: str) -> None:
    router = Router(build(bookinfo=True))
    d = route(router, f"http://localhost:8080{path}", GW)
    assert cluster(d) == ClusterKey("productpage.default.svc.cluster.local", 9080, None)


def test_bookinfo_gateway_other_paths_are_404() -> None:
    router = Router(build(bookinfo=True))
    for path in ("/other", "/productpage/x", "/"):
        assert isinstance(route(router, f"http://localhost:8080{path}", GW), NoRoute)


def test_mesh_virtual_services_do_not_apply_on_the_gateway() -> None:
    router = Router(build(bookinfo=True, variants=("reviews-test-v2.yaml",)))
    # The Bookinfo gateway VS (hosts "*") has no rule for /reviews: the mesh VS is not bound.
    assert isinstance(route(router, "http://reviews:8080/reviews/0", GW), NoRoute)


def test_no_listener_on_a_port_without_http_servers() -> None:
    router = Router(build(bookinfo=True))
    assert isinstance(
        route(router, "http://localhost:9999/productpage", Listener.gateway(9999)), NoRoute
    )


def test_gateway_without_bound_virtual_services_is_404() -> None:
    router = Router(build(gateway()))
    assert router.gateway_ports() == (8080,)
    assert isinstance(route(router, "http://a.example.com:8080/", GW), NoRoute)


# -- host intersection -------------------------------------------------------------------------


def bound(
    name: str, hosts: str, subset: str, *, gateways: str = "[gw]", namespace: str = "default"
) -> str:
    return vs(
        name,
        f"""
        hosts: {hosts}
        gateways: {gateways}
        http:
        - route: [{{destination: {{host: {REVIEWS}, subset: {subset}}}}}]
        """,
        namespace=namespace,
    )


def test_server_wildcard_narrowed_by_the_virtual_service_host() -> None:
    router = Router(build(gateway(), bound("a", "[a.example.com]", "v1")))
    assert cluster(route(router, "http://a.example.com:8080/", GW)).subset == "v1"
    assert cluster(route(router, "http://A.example.com/", GW)).subset == "v1"  # port ignored
    assert isinstance(route(router, "http://b.example.com:8080/", GW), NoRoute)


def test_virtual_service_wildcard_narrowed_by_the_server_host() -> None:
    router = Router(build(gateway(hosts="[a.example.com]"), bound("w", "['*.example.com']", "v2")))
    assert cluster(route(router, "http://a.example.com:8080/", GW)).subset == "v2"
    assert isinstance(route(router, "http://b.example.com:8080/", GW), NoRoute)


def test_apex_host_does_not_meet_a_wildcard_server() -> None:
    router = Router(build(gateway(), bound("apex", "[example.com]", "v1"), strict=False))
    assert isinstance(route(router, "http://example.com:8080/", GW), NoRoute)


def test_server_namespace_restricts_the_virtual_services() -> None:
    gw = gateway(hosts='["prod/*.example.com"]')
    mesh = build(
        gw,
        bound("mine", "[a.example.com]", "v1", gateways="[default/gw]"),
        bound("theirs", "[b.example.com]", "v2", gateways="[default/gw]", namespace="prod"),
        strict=False,
    )
    router = Router(mesh)
    assert isinstance(route(router, "http://a.example.com:8080/", GW), NoRoute)
    assert cluster(route(router, "http://b.example.com:8080/", GW)).subset == "v2"


def test_most_specific_virtual_host_wins() -> None:
    mesh = build(
        gateway(hosts='["*"]'),
        bound("all", "['*']", "v1"),
        bound("wild", "['*.example.com']", "v2"),
        bound("exact", "[a.example.com]", "v3"),
    )
    router = Router(mesh)
    assert cluster(route(router, "http://a.example.com:8080/", GW)).subset == "v3"
    assert cluster(route(router, "http://b.example.com:8080/", GW)).subset == "v2"
    assert cluster(route(router, "http://other.org:8080/", GW)).subset == "v1"


# -- merging ------------------------------------------------------------------------------------


def test_virtual_services_for_one_host_are_merged_with_catch_alls_last() -> None:
    first = vs(
        "first",
        f"""
        hosts: [a.example.com]
        gateways: [gw]
        http:
        - route: [{{destination: {{host: {REVIEWS}, subset: v1}}}}]
        - match: [{{uri: {{prefix: /never}}}}]
          route: [{{destination: {{host: {REVIEWS}, subset: v3}}}}]
        """,
    )
    second = vs(
        "second",
        f"""
        hosts: [a.example.com]
        gateways: [gw]
        http:
        - match: [{{uri: {{prefix: /api}}}}]
          route: [{{destination: {{host: {REVIEWS}, subset: v2}}}}]
        """,
    )
    router = Router(build(gateway(), first, second, strict=False))
    assert cluster(route(router, "http://a.example.com:8080/api/x", GW)).subset == "v2"
    assert cluster(route(router, "http://a.example.com:8080/other", GW)).subset == "v1"
    # Rules after the first VirtualService's catch-all are never emitted.
    assert cluster(route(router, "http://a.example.com:8080/never", GW)).subset == "v1"
    listener = router.gateway_listener(8080)
    assert listener is not None
    vh = listener.virtual_host("a.example.com")
    assert vh is not None and [r.virtual_service.name for r in vh.routes] == ["second", "first"]


def test_two_gateways_on_one_port_share_a_listener() -> None:
    mesh = build(
        gateway("gw-a", "[a.example.com]"),
        gateway("gw-b", "[b.example.com]"),
        bound("a", "[a.example.com]", "v1", gateways="[gw-a]"),
        bound("b", "[b.example.com]", "v2", gateways="[gw-b]"),
        strict=False,
    )
    router = Router(mesh)
    assert router.gateway_ports() == (8080,)
    assert cluster(route(router, "http://a.example.com:8080/", GW)).subset == "v1"
    assert cluster(route(router, "http://b.example.com:8080/", GW)).subset == "v2"
    assert cluster(route(router, "http://a.example.com:8080/", "default/gw-a")).subset == "v1"


def test_match_selectors_on_a_gateway() -> None:
    rule = vs(
        "r",
        f"""
        hosts: [a.example.com]
        gateways: [gw, mesh]
        http:
        - match: [{{gateways: [mesh]}}]
          route: [{{destination: {{host: {REVIEWS}, subset: v1}}}}]
        - match: [{{sourceLabels: {{istio: ingressgateway}}, port: 8080}}]
          route: [{{destination: {{host: {REVIEWS}, subset: v2}}}}]
        """,
    )
    router = Router(build(gateway(), rule))
    assert cluster(route(router, "http://a.example.com:8080/", GW)).subset == "v2"


def test_https_redirect_server() -> None:
    router = Router(
        build(
            gateway(hosts="[a.example.com]", extra="tls: {httpsRedirect: true}"),
            bound("a", "[a.example.com]", "v1"),
        )
    )
    d = route(router, "http://a.example.com:8080/p?q=1", GW)
    assert d == LocalReply(
        301, b"", (("location", "https://a.example.com:8080/p?q=1"),), "direct_response", ""
    )
    listeners = build_listeners(router.mesh.gateways, ())
    vh = listeners[8080].virtual_host("a.example.com")
    assert vh is not None and vh.https_redirect and not vh.routes


def test_gateway_proxy_identity() -> None:
    listeners = build_listeners(
        build(bookinfo=True).gateways, build(bookinfo=True).virtual_services
    )
    vh = listeners[8080].virtual_host("anything")
    assert vh is not None
    assert vh.routes[0].proxy == Workload(
        "bookinfo-gateway", "default", {"istio": "ingressgateway"}
    )
    assert vh.routes[0].gateway == "default/bookinfo-gateway"


# -- the egress gateway pattern ---------------------------------------------------------------

EGRESS = [
    doc(
        "ServiceEntry",
        "cnn",
        """
        hosts: [edition.cnn.com]
        ports: [{number: 80, name: http-port, protocol: HTTP}]
        resolution: DNS
        """,
    ),
    doc(
        "ServiceEntry",
        "istio-egressgateway",
        """
        hosts: [istio-egressgateway]
        ports: [{number: 80, name: http, protocol: HTTP}]
        resolution: STATIC
        endpoints: [{address: 127.0.0.1, ports: {http: 8081}}]
        """,
        namespace="istio-system",
    ),
    doc(
        "Gateway",
        "istio-egressgateway",
        """
        selector: {istio: egressgateway}
        servers:
        - port: {number: 80, name: http, protocol: HTTP}
          hosts: [edition.cnn.com]
        """,
    ),
    doc(
        "DestinationRule",
        "egressgateway-for-cnn",
        """
        host: istio-egressgateway.istio-system.svc.cluster.local
        subsets: [{name: cnn}]
        """,
    ),
    vs(
        "direct-cnn-through-egress-gateway",
        """
        hosts: [edition.cnn.com]
        gateways: [istio-egressgateway, mesh]
        http:
        - match: [{gateways: [mesh], port: 80}]
          route:
          - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: cnn, port: {number: 80}}
            weight: 100
        - match: [{gateways: [istio-egressgateway], port: 80}]
          route:
          - destination: {host: edition.cnn.com, port: {number: 80}}
            weight: 100
        """,
    ),
]


def test_egress_gateway_pattern() -> None:
    router = Router(build(*EGRESS))
    hop1 = route(router, "http://edition.cnn.com/politics")
    assert cluster(hop1) == ClusterKey(
        "istio-egressgateway.istio-system.svc.cluster.local", 80, "cnn"
    )
    assert isinstance(hop1, Forward) and hop1.authority == "edition.cnn.com"
    hop2 = route(router, "http://edition.cnn.com/politics", Listener.gateway(80))
    assert cluster(hop2) == ClusterKey("edition.cnn.com", 80, None)
