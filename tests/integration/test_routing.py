"""Istio's request-routing and traffic-shifting tasks, through the real proxy."""

from __future__ import annotations

import math
import textwrap

import pytest
import requests

from chaoskit.testing.upstream import free_port


def vs(spec: str, name: str = "reviews") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}}}\nspec:\n" + textwrap.indent(textwrap.dedent(spec), "  ")
    )


def who(response: requests.Response) -> str:
    return str(response.json()["upstream"])


def test_default_route_round_robins_exactly_evenly(mesh, client):
    seen = [who(client.get("http://reviews:9080/")) for _ in range(30)]
    assert {name: seen.count(name) for name in set(seen)} == {"v1": 10, "v2": 10, "v3": 10}


def test_header_match_routes_jason_to_v2(mesh, client):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - match: [{headers: {end-user: {exact: jason}}}]
          route: [{destination: {host: reviews, subset: v2}}]
        - route: [{destination: {host: reviews, subset: v1}}]
    """)
    )
    assert {
        who(client.get("http://reviews:9080/", headers={"end-user": "jason"})) for _ in range(5)
    } == {"v2"}
    assert {who(client.get("http://reviews:9080/")) for _ in range(5)} == {"v1"}
    assert {
        who(client.get("http://reviews:9080/", headers={"end-user": "json"})) for _ in range(5)
    } == {"v1"}


def test_weighted_split_is_within_binomial_bounds(mesh, client):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 80}
          - {destination: {host: reviews, subset: v2}, weight: 20}
    """)
    )
    n = 400
    to_v2 = sum(who(client.get("http://reviews:9080/")) == "v2" for _ in range(n))
    sigma = math.sqrt(n * 0.2 * 0.8)  # binomial(400, 0.2): mean 80, sigma 8
    assert abs(to_v2 - 80) <= 4.5 * sigma  # false alarm probability < 1e-5


def test_no_matching_rule_is_404_nr_with_empty_body(mesh, client):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - match: [{uri: {prefix: /api}}]
          route: [{destination: {host: reviews, subset: v1}}]
    """)
    )
    r = client.get("http://reviews:9080/other")
    assert r.status_code == 404 and r.content == b""
    record = mesh.records[-1]
    assert record.flags == ("NR",) and record.details == "route_not_found"


def test_subset_no_destination_rule_defines_is_503_nc_and_loads(mesh, client):
    """The VirtualService applied before its DestinationRule: Istio accepts it and Envoy answers
    503 NC with an empty body (istio-reference.md §7.2); the other rules keep serving."""
    validation = mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - match: [{uri: {prefix: /canary}}]
          route: [{destination: {host: reviews, subset: v4}}]
        - route: [{destination: {host: reviews, subset: v1}}]
    """)
    )
    assert [i.code for i in validation.issues.warnings] == ["IST0101"]
    r = client.get("http://reviews:9080/canary")
    assert r.status_code == 503 and r.content == b""
    record = mesh.records[-1]
    assert record.flags == ("NC",) and record.details == "cluster_not_found"
    assert record.cluster == "outbound|9080|v4|reviews.default.svc.cluster.local"
    assert who(client.get("http://reviews:9080/")) == "v1"


def test_refused_endpoint_is_503_uf_with_envoys_text(mesh, client):
    dead = free_port()
    mesh.apply(
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: dead}}
        spec:
          hosts: [dead]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {dead}}}}}]
        """)
    )
    r = client.get("http://dead/")
    assert r.status_code == 503
    assert r.text == (
        "upstream connect error or disconnect/reset before headers. reset reason: "
        "connection failure, transport failure reason: delayed connect error: 111"
    )
    assert mesh.records[-1].flags == ("UF",)


def test_direct_response_and_redirect(mesh, client):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - match: [{uri: {exact: /health}}]
          directResponse: {status: 200, body: {string: "ok"}}
          headers: {response: {set: {x-served-by: mesh}}}
        - match: [{uri: {prefix: /old}}]
          redirect: {uri: /new, redirectCode: 302}
        - route: [{destination: {host: reviews, subset: v1}}]
    """)
    )
    r = client.get("http://reviews:9080/health")
    assert (r.status_code, r.text, r.headers["x-served-by"]) == (200, "ok", "mesh")
    r = client.get("http://reviews:9080/old?x=1", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "http://reviews:9080/new?x=1"


def test_rewrite_and_request_headers_reach_the_upstream(mesh, client, upstreams):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - match: [{uri: {prefix: /api/}}]
          rewrite: {uri: /v2/}
          headers: {request: {set: {x-tenant: blue}, remove: [x-drop]}}
          route: [{destination: {host: reviews, subset: v3}}]
    """)
    )
    r = client.get(
        "http://reviews:9080/api/books?id=1", headers={"x-drop": "1", "x-request-id": "abc"}
    )
    assert r.status_code == 200
    (got,) = upstreams["v3"].requests
    assert got.path == "/v2/books?id=1"
    assert got.headers["x-tenant"] == "blue" and "x-drop" not in got.headers
    assert got.headers["x-envoy-original-path"] == "/api/books?id=1"
    assert got.headers["x-request-id"] == "abc"
    assert got.headers["x-envoy-attempt-count"] == "1"
    assert got.headers["host"] == "reviews:9080"


def test_source_labels_use_the_callers_name_from_the_proxy_url(mesh, upstreams):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - match: [{sourceLabels: {app: productpage}}]
          route: [{destination: {host: reviews, subset: v3}}]
        - route: [{destination: {host: reviews, subset: v1}}]
    """)
    )
    named = {"http": mesh.url_for("productpage")}
    assert who(requests.get("http://reviews:9080/", proxies=named, timeout=10)) == "v3"
    curl_style = requests.get(  # what curl -x http://productpage@host:port sends
        "http://reviews:9080/",
        proxies={"http": mesh.url},
        timeout=10,
        headers={"proxy-authorization": "Basic cHJvZHVjdHBhZ2U6"},
    )
    assert who(curl_style) == "v3"
    assert who(requests.get("http://reviews:9080/", proxies={"http": mesh.url}, timeout=10)) == "v1"
    assert mesh.records[-3].source == "productpage"


def test_unknown_hosts_follow_the_outbound_traffic_policy(mesh, client, upstreams):
    other = upstreams["other"]
    r = client.get(f"http://127.0.0.1:{other.port}/x")
    assert r.status_code == 200 and who(r) == "other"  # ALLOW_ANY: passthrough
    assert mesh.records[-1].cluster == "PassthroughCluster"
    mesh.apply(
        textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default}
        spec:
          outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        """)
    )
    r = client.get(f"http://127.0.0.1:{other.port}/x")
    assert r.status_code == 502 and r.content == b""
    assert len(other.requests) == 1


def test_gateway_listener_routes_bound_virtual_services(mesh, upstreams):
    mesh.apply(
        textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: web}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: ["*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: web}
        spec:
          hosts: ["*"]
          gateways: [web]
          http:
          - match: [{uri: {prefix: /reviews}}]
            route: [{destination: {host: reviews, subset: v2, port: {number: 9080}}}]
        """)
    )
    base = mesh.gateway_url(8080)
    r = requests.get(f"{base}/reviews/1", timeout=10)
    assert r.status_code == 200 and who(r) == "v2"
    assert r.headers["server"] == "istio-envoy"
    r = requests.get(f"{base}/elsewhere", timeout=10)
    assert r.status_code == 404
    assert mesh.records[-1].listener == "gateway:8080"


def test_records_and_stats(mesh, client):
    client.get("http://reviews:9080/a")
    client.get("http://reviews:9080/b", headers={"x-request-id": "req-2"})
    first, second = mesh.records
    assert (first.method, first.path, first.status) == ("GET", "/a", 200)
    assert first.cluster == "outbound|9080||reviews.default.svc.cluster.local"
    assert second.request_id == "req-2"
    assert len(first.request_id) == 36
    stats = mesh.stats
    assert stats["http.downstream_rq_total"] == 2
    assert stats["cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_200"] == 2


def test_same_seed_same_decisions(mesh, client):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - route:
          - {destination: {host: reviews, subset: v1}, weight: 50}
          - {destination: {host: reviews, subset: v2}, weight: 50}
    """)
    )
    first = [who(client.get("http://reviews:9080/")) for _ in range(40)]
    mesh.reset()
    second = [who(client.get("http://reviews:9080/")) for _ in range(40)]
    assert first == second and set(first) == {"v1", "v2"}


@pytest.mark.parametrize("path", ["/", "/x?y=1"])
def test_admin_endpoints(mesh, client, path):
    client.get(f"http://reviews:9080{path}")
    admin = mesh.admin_url
    assert requests.get(f"{admin}/ready", timeout=5).text == "LIVE\n"
    prom = requests.get(f"{admin}/stats", timeout=5).text
    assert (
        'envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|9080||reviews.default.svc.cluster.local"} 1'
        in prom
    )
    stats = requests.get(f"{admin}/stats?format=json", timeout=5).json()["stats"]
    assert {"name": "http.downstream_rq_total", "value": 1} in stats
    clusters = requests.get(f"{admin}/clusters", timeout=5).text
    assert "outbound|9080||reviews.default.svc.cluster.local::127.0.0.1:" in clusters
    dump = requests.get(f"{admin}/config_dump", timeout=5).json()
    assert dump["seed"] == 7 and any(r["kind"] == "ServiceEntry" for r in dump["resources"])
    assert requests.post(f"{admin}/reset_counters", timeout=5).text == "OK\n"
    assert requests.get(f"{admin}/nope", timeout=5).status_code == 404


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    import threading
    import time as _time

    deadline = _time.monotonic() + timeout
    while _time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(0.01)
    return predicate()


def test_mirror_copies_requests_and_discards_answers(mesh, client, upstreams):
    mesh.apply(
        vs("""
        hosts: [reviews]
        http:
        - route: [{destination: {host: reviews, subset: v1}}]
          mirror: {host: reviews, subset: v2}
          mirrorPercentage: {value: 100}
    """)
    )
    for i in range(5):
        r = client.get(f"http://reviews:9080/m{i}")
        assert who(r) == "v1"
    assert _wait_for(lambda: len(upstreams["v2"].requests) == 5)
    assert sorted(q.path for q in upstreams["v2"].requests) == [f"/m{i}" for i in range(5)]


def test_egress_gateway_pattern(mesh, client, upstreams):
    gateway = textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: istio-egressgateway, namespace: istio-system}
        spec:
          selector: {istio: egressgateway}
          servers:
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: [api.example.test]
        """)
    mesh.apply(gateway)
    gw_port = int(mesh.gateway_url(8080).rsplit(":", 1)[1])
    external = upstreams["other"]
    mesh.apply(
        gateway,
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: api}}
        spec:
          hosts: [api.example.test]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {external.port}}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: istio-egressgateway, namespace: istio-system}}
        spec:
          hosts: [istio-egressgateway.istio-system.svc.cluster.local]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {gw_port}}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: api-through-egress}}
        spec:
          hosts: [api.example.test]
          gateways: [istio-system/istio-egressgateway, mesh]
          http:
          - match: [{{gateways: [mesh], port: 80}}]
            route: [{{destination: {{host: istio-egressgateway.istio-system.svc.cluster.local, port: {{number: 80}}}}}}]
          - match: [{{gateways: [istio-system/istio-egressgateway], port: 8080}}]
            route: [{{destination: {{host: api.example.test, port: {{number: 80}}}}}}]
        """),
    )
    r = client.get("http://api.example.test/data")
    assert r.status_code == 200 and who(r) == "other"
    by_listener = {rec.listener: rec for rec in mesh.records}
    assert set(by_listener) == {"mesh", "gateway:8080"}  # the egress gateway saw it first
    assert by_listener["gateway:8080"].cluster == "outbound|80||api.example.test"
