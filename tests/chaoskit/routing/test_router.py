"""Istio's traffic-management tasks, reproduced as pure routing decisions.

Traffic-shifting bounds: with n draws of a destination of probability p, the count is binomial
with standard deviation sqrt(n·p·(1−p)); the tests accept ±5 standard deviations (a false
failure would need a 1-in-3.5-million draw, and the seed is fixed anyway).
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from chaoskit.config.http_route import DEFAULT_RETRY_ON
from chaoskit.routing import (
    ClusterKey,
    ClusterNotFound,
    Forward,
    Listener,
    LocalReply,
    Mirror,
    NoRoute,
    Passthrough,
    Router,
    Workload,
)
from chaoskit.routing.headers import HeaderOp

from .helpers import RATINGS, REVIEWS, build, doc, req, route, vs

ANY = Workload("anyone")


def forward(d: object) -> Forward:
    assert isinstance(d, Forward), d
    return d


def subset(d: object) -> str | None:
    return forward(d).cluster.subset


# -- request routing (virtual-service-reviews-test-v2.yaml) ----------------------------------


def test_request_routing_jason_gets_v2_everyone_else_v1() -> None:
    router = Router(build(bookinfo=True, variants=("reviews-test-v2.yaml",)))
    jason = route(router, "http://reviews:9080/reviews/0", headers={"end-user": "jason"})
    assert forward(jason).cluster == ClusterKey(REVIEWS, 9080, "v2")
    assert forward(jason).cluster.name == f"outbound|9080|v2|{REVIEWS}"
    for user in ("", "Jason", "mary"):
        headers = {"end-user": user} if user else {}
        assert subset(route(router, "http://reviews:9080/", headers=headers)) == "v1"


def test_all_v1_routes_every_service_to_v1() -> None:
    router = Router(build(bookinfo=True))
    for svc in ("productpage", "reviews", "ratings", "details"):
        d = forward(route(router, f"http://{svc}:9080/"))
        assert d.cluster == ClusterKey(f"{svc}.default.svc.cluster.local", 9080, "v1")
        assert d.route_name == ""  # unnamed rule


# -- traffic shifting --------------------------------------------------------------------------


def shares(router: Router, n: int, seed: int = 7) -> Counter[str | None]:
    rng = random.Random(seed)
    r = req("http://reviews:9080/")
    return Counter(forward(router.route(r, Listener.mesh(), rng)).cluster.subset for _ in range(n))


def within(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def test_traffic_shifting_80_20() -> None:
    counts = shares(Router(build(bookinfo=True, variants=("reviews-80-20.yaml",))), 2000)
    assert set(counts) == {"v1", "v2"}
    assert within(counts["v2"], 2000, 0.2), counts


def test_traffic_shifting_50_50_v3() -> None:
    counts = shares(Router(build(bookinfo=True, variants=("reviews-50-v3.yaml",))), 2000)
    assert set(counts) == {"v1", "v3"}
    assert within(counts["v3"], 2000, 0.5), counts


def test_same_seed_same_picks() -> None:
    router = Router(build(bookinfo=True, variants=("reviews-50-v3.yaml",)))
    r = req("http://reviews:9080/")

    def picks(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        return [forward(router.route(r, "mesh", rng)).cluster.subset for _ in range(50)]

    assert picks(3) == picks(3)
    assert picks(3) != picks(4)


def weighted(spec: str) -> Router:
    return Router(build(vs("reviews", f"hosts: [reviews]\nhttp:\n- route:\n{spec}")))


def test_weights_need_not_sum_to_100_and_zero_weights_are_dropped() -> None:
    router = weighted(
        """
        - {destination: {host: reviews, subset: v1}, weight: 1}
        - {destination: {host: reviews, subset: v2}, weight: 3}
        - {destination: {host: reviews, subset: v3}, weight: 0}
        """
    )
    counts = shares(router, 2000)
    assert "v3" not in counts
    assert within(counts["v2"], 2000, 0.75), counts


def test_one_destination_takes_all_traffic_without_drawing() -> None:
    router = weighted("  - {destination: {host: reviews, subset: v2}, weight: 10}")
    rng = random.Random(1)
    state = rng.getstate()
    assert subset(router.route(req("http://reviews:9080/"), "mesh", rng)) == "v2"
    assert rng.getstate() == state  # no random number consumed


# -- defaults: routes, timeouts, retries -------------------------------------------------------


def test_service_without_virtual_service_gets_the_default_route() -> None:
    d = forward(route(build(), "http://ratings:9080/x?y=1"))
    assert d.cluster == ClusterKey(RATINGS, 9080, None)
    assert d.route_name == "default" and d.virtual_service is None and d.route is None
    assert d.path == "/x?y=1" and d.authority == "ratings:9080"
    assert d.timeout == 15.0 and d.retry is None  # chaoskit's classic defaults


def test_istio_current_defaults() -> None:
    config = doc("MeshConfig", "mesh", "defaults: istio-current", api="chaoskit.dev/v1alpha1")
    d = forward(route(build(config), "http://ratings:9080/"))
    assert d.timeout is None
    assert d.retry is not None and d.retry.attempts == 2 and d.retry.retry_on == DEFAULT_RETRY_ON


@pytest.mark.parametrize(
    ("rule", "timeout", "attempts", "retry_on"),
    [
        ("timeout: 0.5s", 0.5, None, None),
        ("retries: {attempts: 0}", 15.0, None, None),
        ("retries: {attempts: 3}", 15.0, 3, DEFAULT_RETRY_ON),
        ("retries: {attempts: 3, retryOn: '5xx,503'}", 15.0, 3, ("5xx", "503")),
    ],
)
def test_rule_timeout_and_retries(
    rule: str, timeout: float, attempts: int | None, retry_on: tuple[str, ...] | None
) -> None:
    mesh = build(
        vs("r", f"hosts: [reviews]\nhttp:\n- route: [{{destination: {{host: reviews}}}}]\n  {rule}")
    )
    d = forward(route(mesh, "http://reviews:9080/"))
    assert d.timeout == timeout
    if attempts is None:
        assert d.retry is None
    else:
        assert d.retry is not None and (d.retry.attempts, d.retry.retry_on) == (attempts, retry_on)


def test_request_timeouts_task_variant() -> None:
    router = Router(build(bookinfo=True, variants=("reviews-timeout.yaml",)))
    d = forward(route(router, "http://reviews:9080/"))
    assert (d.cluster.subset, d.timeout) == ("v2", 0.5)
    ratings = forward(route(router, "http://ratings:9080/"))
    assert ratings.fault is not None and ratings.fault.delay is not None
    assert ratings.fault.delay.fixed_delay == 2.0 and ratings.timeout == 15.0


def test_fault_injection_abort_for_jason_only() -> None:
    router = Router(build(bookinfo=True, variants=("ratings-test-abort.yaml",)))
    jason = forward(route(router, "http://ratings:9080/", headers={"end-user": "jason"}))
    assert jason.fault is not None and jason.fault.abort is not None
    assert (jason.fault.abort.http_status, jason.fault.abort.percentage) == (500, 100.0)
    assert forward(route(router, "http://ratings:9080/")).fault is None


# -- no route, no cluster -----------------------------------------------------------------------


def test_no_rule_matches_is_404_nr() -> None:
    mesh = build(
        vs(
            "r",
            "hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /api}}]\n  route: [{destination: {host: reviews}}]",
        )
    )
    d = route(mesh, "http://reviews:9080/other")
    assert isinstance(d, NoRoute)
    assert (d.status, d.body, d.flags, d.details) == (404, b"", "NR", "route_not_found")
    assert d.virtual_service is not None and d.virtual_service.name == "r"


def test_unknown_subset_is_503_nc() -> None:
    mesh = build(
        vs("r", "hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, subset: v9}}]"),
    )
    d = route(mesh, "http://reviews:9080/")
    assert isinstance(d, ClusterNotFound)
    assert (d.status, d.body, d.flags, d.details) == (503, b"", "NC", "cluster_not_found")
    assert d.cluster.name == f"outbound|9080|v9|{REVIEWS}"


def test_unknown_destination_host_and_port_are_503_nc() -> None:
    mesh = build(
        vs(
            "r",
            """
            hosts: [reviews]
            http:
            - match: [{uri: {prefix: /ghost}}]
              route: [{destination: {host: ghost}}]
            - route: [{destination: {host: ratings, port: {number: 9999}}}]
            """,
        ),
        strict=False,
    )
    ghost = route(mesh, "http://reviews:9080/ghost")
    assert isinstance(ghost, ClusterNotFound)
    assert ghost.cluster == ClusterKey("ghost.default.svc.cluster.local", 9080, None)
    wrong_port = route(mesh, "http://reviews:9080/")
    assert isinstance(wrong_port, ClusterNotFound)
    assert wrong_port.cluster == ClusterKey(RATINGS, 9999, None)


def test_nc_reply_carries_the_rule_response_headers() -> None:
    mesh = build(
        vs(
            "r",
            """
            hosts: [reviews]
            http:
            - route: [{destination: {host: reviews, subset: v9}}]
              headers: {response: {set: {x-rule: r}}}
            """,
        ),
        strict=False,
    )
    d = route(mesh, "http://reviews:9080/")
    assert isinstance(d, ClusterNotFound) and d.headers == (("x-rule", "r"),)


# -- host names ---------------------------------------------------------------------------------

OTHER = Workload("client", "other")


@pytest.mark.parametrize(
    "url",
    [
        "http://reviews:9080/",
        "http://reviews.default:9080/",
        "http://reviews.default.svc:9080/",
        "http://reviews.default.svc.cluster.local:9080/",
        "http://reviews.default.svc.cluster.local.:9080/",
        "http://REVIEWS:9080/",
    ],
)
def test_short_name_forms_from_the_same_namespace(url: str) -> None:
    mesh = build(bookinfo=True, variants=("reviews-test-v2.yaml",))
    assert subset(route(mesh, url)) == "v1"


def test_bare_short_name_from_another_namespace_is_not_the_service() -> None:
    mesh = build(bookinfo=True)
    assert route(mesh, "http://reviews:9080/", source=OTHER) == Passthrough("reviews", 9080)
    for url in ("http://reviews.default:9080/", "http://reviews.default.svc.cluster.local:9080/"):
        assert subset(route(mesh, url, source=OTHER)) == "v1"


def test_default_port_means_the_only_service_port() -> None:
    mesh = build(bookinfo=True)
    d = forward(route(mesh, "http://reviews/"))
    assert d.cluster.port == 9080 and d.authority == "reviews"
    assert route(mesh, "http://reviews:9999/") == Passthrough("reviews", 9999)


def test_default_port_leniency_needs_a_single_port() -> None:
    two_ports = doc(
        "ServiceEntry",
        "api",
        """
        hosts: [api.example.com]
        ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: admin, protocol: HTTP}]
        resolution: DNS
        """,
    )
    mesh = build(two_ports)
    assert route(mesh, "http://api.example.com/") == Passthrough("api.example.com", 80)
    d = forward(route(mesh, "http://api.example.com:9090/"))
    assert d.cluster == ClusterKey("api.example.com", 9090)


def test_literal_and_wildcard_service_entries() -> None:
    entries = doc(
        "ServiceEntry",
        "ext",
        """
        hosts: [httpbin.org, "*.wikipedia.org"]
        ports: [{number: 80, name: http, protocol: HTTP}]
        resolution: NONE
        """,
    )
    mesh = build(entries)
    assert forward(route(mesh, "http://httpbin.org/get")).cluster == ClusterKey("httpbin.org", 80)
    wiki = forward(route(mesh, "http://en.wikipedia.org/wiki"))
    assert wiki.cluster == ClusterKey("*.wikipedia.org", 80)
    assert route(mesh, "http://wikipedia.org/") == Passthrough("wikipedia.org", 80)


# -- outbound traffic policy and Sidecar scoping -------------------------------------------------


def test_allow_any_passes_unknown_hosts_through() -> None:
    d = route(build(), "http://example.com/x")
    assert d == Passthrough("example.com", 80)
    assert isinstance(d, Passthrough) and d.timeout is None and d.retry is None
    assert (d.route_name, d.cluster_name) == ("allow_any", "PassthroughCluster")


BLOCK_ALL = LocalReply(502, b"", (), "direct_response", "block_all")


def test_registry_only_from_mesh_config_answers_502() -> None:
    config = doc(
        "MeshConfig",
        "mesh",
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
        api="chaoskit.dev/v1alpha1",
    )
    mesh = build(config)
    assert route(mesh, "http://example.com/") == BLOCK_ALL
    assert isinstance(route(mesh, "http://reviews:9080/"), Forward)


def test_registry_only_from_a_sidecar_and_empty_block_means_registry_only() -> None:
    for policy in ("{mode: REGISTRY_ONLY}", "{}"):
        sidecar = doc("Sidecar", "default", f"outboundTrafficPolicy: {policy}")
        assert route(build(sidecar, strict=False), "http://example.com/") == BLOCK_ALL
    allow = doc("Sidecar", "default", "outboundTrafficPolicy: {mode: ALLOW_ANY}")
    config = doc(
        "MeshConfig",
        "mesh",
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
        api="chaoskit.dev/v1alpha1",
    )
    assert route(build(allow, config), "http://example.com/") == Passthrough("example.com", 80)


def test_sidecar_egress_scoping() -> None:
    sidecar = doc(
        "Sidecar",
        "default",
        """
        egress:
        - hosts: ["./ratings.default.svc.cluster.local"]
        outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        """,
    )
    mesh = build(sidecar)
    assert route(mesh, "http://reviews:9080/") == BLOCK_ALL  # not imported: unmatched traffic
    assert forward(route(mesh, "http://ratings:9080/")).cluster.host == RATINGS
    # Callers in another namespace are not configured by this Sidecar.
    assert isinstance(route(mesh, "http://reviews.default:9080/", source=OTHER), Forward)


def test_scoping_alone_does_not_block() -> None:
    sidecar = doc("Sidecar", "default", "egress:\n- hosts: ['./ratings.default.svc.cluster.local']")
    assert route(build(sidecar), "http://reviews:9080/") == Passthrough("reviews", 9080)


def test_sidecar_workload_selector_and_root_namespace() -> None:
    selected = doc(
        "Sidecar",
        "reviews-only",
        """
        workloadSelector: {labels: {app: reviews}}
        outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        """,
    )
    root = doc(
        "Sidecar",
        "default",
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
        namespace="istio-system",
    )
    mesh = build(selected)
    app = Workload("reviews-v1", "default", {"app": "reviews"})
    assert route(mesh, "http://example.com/", source=app) == BLOCK_ALL
    assert route(mesh, "http://example.com/", source=ANY) == Passthrough("example.com", 80)
    rooted = build(root)
    assert route(rooted, "http://example.com/", source=OTHER) == BLOCK_ALL


def test_sidecar_egress_proxy_receives_unknown_traffic() -> None:
    entries = doc(
        "ServiceEntry",
        "squid",
        """
        hosts: [squid.external]
        ports: [{number: 3128, name: http, protocol: HTTP}]
        resolution: DNS
        """,
    )
    sidecar = doc(
        "Sidecar",
        "default",
        """
        outboundTrafficPolicy:
          mode: ALLOW_ANY
          egressProxy: {host: squid.external, port: {number: 3128}}
        """,
    )
    d = forward(route(build(entries, sidecar), "http://example.com/x"))
    assert d.cluster == ClusterKey("squid.external", 3128) and d.route_name == "allow_any"
    assert d.timeout is None and d.retry is None and d.path == "/x"


def test_export_to_hides_a_virtual_service_from_other_namespaces() -> None:
    private = vs(
        "private",
        """
        hosts: [reviews.default.svc.cluster.local]
        exportTo: ["."]
        http:
        - route: [{destination: {host: reviews.default.svc.cluster.local, subset: v3}}]
        """,
        namespace="default",
    )
    mesh = build(private)
    assert subset(route(mesh, "http://reviews:9080/")) == "v3"
    assert (
        subset(route(mesh, "http://reviews.default:9080/", source=OTHER)) is None
    )  # default route


# -- virtual services: selection and match selectors ----------------------------------------------


def test_source_labels_with_a_workload_entry_caller() -> None:
    mesh = build(
        doc("WorkloadEntry", "reviews-v2", "labels: {app: reviews, version: v2}"),
        vs(
            "ratings",
            """
            hosts: [ratings]
            http:
            - match: [{sourceLabels: {app: reviews, version: v2}}]
              route: [{destination: {host: ratings}}]
              headers: {request: {set: {x-caller: reviews-v2}}}
            - route: [{destination: {host: ratings}}]
            """,
        ),
    )
    we = mesh.workloads_by_name["reviews-v2"]
    caller = Workload(we.name, we.namespace, we.labels)
    d = forward(route(mesh, "http://ratings:9080/", source=caller))
    assert d.request_headers.ops == (HeaderOp("set", "x-caller", "reviews-v2"),)
    assert not forward(route(mesh, "http://ratings:9080/")).request_headers


def test_source_namespace_selects_callers() -> None:
    mesh = build(
        vs(
            "r",
            """
            hosts: [reviews]
            http:
            - match: [{sourceNamespace: other}]
              route: [{destination: {host: reviews, subset: v3}}]
            - route: [{destination: {host: reviews, subset: v1}}]
            """,
        )
    )
    assert subset(route(mesh, "http://reviews.default:9080/", source=OTHER)) == "v3"
    assert subset(route(mesh, "http://reviews:9080/")) == "v1"


def test_a_virtual_service_with_no_entry_for_this_caller_falls_back_to_the_default_route() -> None:
    mesh = build(
        vs(
            "r",
            """
            hosts: [reviews]
            http:
            - match: [{sourceLabels: {app: productpage}}]
              route: [{destination: {host: reviews, subset: v2}}]
            """,
        )
    )
    pp = Workload("productpage", "default", {"app": "productpage"})
    assert subset(route(mesh, "http://reviews:9080/", source=pp)) == "v2"
    assert isinstance(route(mesh, "http://reviews:9080/x", source=pp), Forward)
    d = forward(route(mesh, "http://reviews:9080/", source=ANY))
    assert d.route_name == "default" and d.cluster.subset is None


def test_match_port_is_the_service_port() -> None:
    mesh = build(
        vs(
            "r",
            """
            hosts: [reviews]
            http:
            - match: [{port: 9080, uri: {prefix: /a}}]
              route: [{destination: {host: reviews, subset: v2}}]
            - route: [{destination: {host: reviews, subset: v1}}]
            """,
        )
    )
    assert subset(route(mesh, "http://reviews:9080/a")) == "v2"
    assert subset(route(mesh, "http://reviews/a")) == "v2"  # port 80 → the service's 9080


def test_the_first_of_several_mesh_virtual_services_wins() -> None:
    one = vs(
        "one", "hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, subset: v1}}]"
    )
    two = vs(
        "two", "hosts: [reviews]\nhttp:\n- route: [{destination: {host: reviews, subset: v2}}]"
    )
    # chaoskit's validation reports the duplicate; the router still decides deterministically.
    assert subset(route(build(one, two, strict=False), "http://reviews:9080/")) == "v1"


def test_exact_virtual_service_host_beats_a_wildcard() -> None:
    entries = doc(
        "ServiceEntry",
        "ex",
        """
        hosts: [a.example.com, b.example.com]
        ports: [{number: 80, name: http, protocol: HTTP}]
        resolution: DNS
        """,
    )
    wild = vs(
        "wild",
        "hosts: ['*.example.com']\nhttp:\n- route: [{destination: {host: reviews, subset: v3}}]",
    )
    exact = vs(
        "exact",
        "hosts: [a.example.com]\nhttp:\n- route: [{destination: {host: reviews, subset: v1}}]",
    )
    mesh = build(entries, wild, exact)
    assert subset(route(mesh, "http://a.example.com/")) == "v1"
    assert subset(route(mesh, "http://b.example.com/")) == "v3"


def test_virtual_service_host_outside_the_registry_is_routed_on_port_80() -> None:
    mesh = build(
        vs(
            "alias",
            "hosts: [bookinfo.example.com]\nhttp:\n- route: [{destination: {host: reviews}}]",
        )
    )
    d = forward(route(mesh, "http://bookinfo.example.com/x"))
    assert d.cluster == ClusterKey(REVIEWS, 9080) and d.authority == "bookinfo.example.com"
    assert route(mesh, "http://bookinfo.example.com:8000/") == Passthrough(
        "bookinfo.example.com", 8000
    )


def test_virtual_service_extra_host_is_served_on_its_services_ports() -> None:
    mesh = build(
        vs(
            "both",
            "hosts: [reviews, alias.example.com]\nhttp:\n- route: [{destination: {host: reviews}}]",
        )
    )
    assert isinstance(route(mesh, "http://alias.example.com:9080/"), Forward)
    assert route(mesh, "http://alias.example.com/") == Passthrough("alias.example.com", 80)


# -- actions: rewrite, redirect, direct response, headers, mirrors ---------------------------------


def one_rule(rule: str, *, strict: bool = True) -> Router:
    return Router(build(vs("r", "hosts: [reviews]\nhttp:\n" + rule), strict=strict))


def test_rewrite_uri_replaces_the_matched_prefix() -> None:
    router = one_rule(
        """
        - name: api
          match: [{name: v1, uri: {prefix: /api/v1}}, {uri: {prefix: /api}}]
          rewrite: {uri: /v2}
          route: [{destination: {host: reviews}}]
        - name: all
          rewrite: {uri: /v1, authority: reviews.internal}
          route: [{destination: {host: reviews}}]
        """
    )
    d = forward(route(router, "http://reviews:9080/api/v1/x?q=1"))
    assert (d.path, d.original_path, d.route_name) == ("/v2/x?q=1", "/api/v1/x?q=1", "api.v1")
    assert forward(route(router, "http://reviews:9080/api/x")).route_name == "api"
    d = forward(route(router, "http://reviews:9080/foo"))
    assert (d.path, d.authority, d.original_path) == ("/v1foo", "reviews.internal", "/foo")
    assert forward(route(Router(build()), "http://reviews:9080/foo")).original_path is None


def test_uri_regex_rewrite() -> None:
    router = one_rule(
        r"""
        - rewrite: {uriRegexRewrite: {match: '^/service/([^/]+)(/.*)$', rewrite: '\2/instance/\1'}}
          route: [{destination: {host: reviews}}]
        """
    )
    d = forward(route(router, "http://reviews:9080/service/foo/v1/api?x"))
    assert d.path == "/v1/api/instance/foo?x"


def test_authority_precedence() -> None:
    router = one_rule(
        """
        - match: [{uri: {prefix: /a}}]
          headers: {request: {set: {host: from-rule}}}
          route: [{destination: {host: reviews}, headers: {request: {set: {host: from-dest}}}}]
        - match: [{uri: {prefix: /b}}]
          route: [{destination: {host: reviews}, headers: {request: {add: {":authority": from-dest}}}}]
        - rewrite: {authority: from-rewrite}
          headers: {request: {set: {x: y}}}
          route: [{destination: {host: reviews}, headers: {request: {set: {host: from-dest}}}}]
        """,
        strict=False,
    )
    assert forward(route(router, "http://reviews:9080/a")).authority == "from-rule"
    assert forward(route(router, "http://reviews:9080/b")).authority == "from-dest"
    assert forward(route(router, "http://reviews:9080/c")).authority == "from-rewrite"


def test_header_plan_ordering_through_the_router() -> None:
    router = one_rule(
        """
        - match: [{uri: {prefix: /single}}]
          headers: {request: {set: {x-v: rule}}, response: {add: {x-r: rule}}}
          route: [{destination: {host: reviews}, headers: {request: {set: {x-v: dest}}}}]
        - headers: {request: {set: {x-v: rule}}}
          route:
          - {destination: {host: reviews, subset: v1}, weight: 50, headers: {request: {set: {x-v: dest}}}}
          - {destination: {host: reviews, subset: v2}, weight: 50, headers: {request: {set: {x-v: dest}}}}
        """
    )
    single = forward(route(router, "http://reviews:9080/single"))
    assert [op.value for op in single.request_headers.ops] == ["rule", "dest"]
    assert single.response_headers.ops == (HeaderOp("add", "x-r", "rule"),)
    split = forward(route(router, "http://reviews:9080/weighted"))
    assert [op.value for op in split.request_headers.ops] == ["dest", "rule"]


def test_redirect_is_a_local_reply_with_location_and_rule_headers() -> None:
    router = one_rule(
        """
        - name: moved
          match: [{uri: {exact: /v1/getProductRatings}}]
          redirect: {uri: /v1/bookRatings, authority: newratings.default.svc.cluster.local}
          headers: {response: {set: {x-moved: "yes"}}}
        - match: [{uri: {prefix: /old}}]
          redirect: {prefixRewrite: /new, redirectCode: 308, scheme: https, port: 8443}
        """
    )
    d = route(router, "http://reviews:9080/v1/getProductRatings?id=1")
    assert d == LocalReply(
        301,
        b"",
        (
            ("location", "http://newratings.default.svc.cluster.local/v1/bookRatings?id=1"),
            ("x-moved", "yes"),
        ),
        "direct_response",
        "moved",
    )
    d = route(router, "http://reviews:9080/old/x")
    assert isinstance(d, LocalReply)
    assert (d.status, d.headers) == (308, (("location", "https://reviews:8443/new/x"),))


def test_direct_response() -> None:
    router = one_rule(
        """
        - match: [{uri: {exact: /health}}]
          directResponse: {status: 200, body: {string: ok}}
          headers: {response: {set: {content-type: application/json}}}
        - match: [{uri: {exact: /gone}}]
          directResponse: {status: 410}
        - directResponse: {status: 302}
        """
    )
    d = route(router, "http://reviews:9080/health")
    assert d == LocalReply(
        200, b"ok", (("content-type", "application/json"),), "direct_response", ""
    )
    gone = route(router, "http://reviews:9080/gone")
    assert isinstance(gone, LocalReply) and (gone.status, gone.body, gone.headers) == (410, b"", ())
    found = route(router, "http://reviews:9080/x?y")
    assert isinstance(found, LocalReply)
    assert found.headers == (("location", "http://reviews:9080/x?y"),)  # Envoy adds it for 3xx


def test_mirrors() -> None:
    router = one_rule(
        """
        - match: [{uri: {prefix: /one}}]
          route: [{destination: {host: reviews, subset: v1}, weight: 100}]
          mirror: {host: reviews, subset: v2}
        - match: [{uri: {prefix: /zero}}]
          route: [{destination: {host: reviews, subset: v1}}]
          mirror: {host: reviews, subset: v2}
          mirrorPercentage: {value: 0}
        - route: [{destination: {host: reviews, subset: v1}}]
          mirrors:
          - {destination: {host: reviews, subset: v2}, percentage: {value: 25}}
          - {destination: {host: ratings}}
          - {destination: {host: reviews, subset: v9}}
        """,
        strict=False,
    )
    assert forward(route(router, "http://reviews:9080/one")).mirrors == (
        Mirror(ClusterKey(REVIEWS, 9080, "v2"), 100.0),
    )
    assert forward(route(router, "http://reviews:9080/zero")).mirrors == ()
    assert forward(route(router, "http://reviews:9080/")).mirrors == (
        Mirror(ClusterKey(REVIEWS, 9080, "v2"), 25.0),
        Mirror(ClusterKey(RATINGS, 9080, None), 100.0),
    )


# -- listeners ----------------------------------------------------------------------------------


def test_listener_forms() -> None:
    assert Listener.mesh().is_mesh and str(Listener.mesh()) == "mesh"
    assert str(Listener.gateway(8080)) == "gateway:8080"
    assert Listener.parse("gateway:8080") == Listener.gateway(8080)
    assert Listener.parse("mesh") == Listener.mesh()
    assert Listener.parse("istio-system/ingress", 8080) == Listener.gateway(8080)
    with pytest.raises(ValueError, match="not a listener"):
        Listener.parse("gateway:x")


def test_router_helpers() -> None:
    router = Router(build(bookinfo=True), hostname="proxy-1")
    assert router.gateway_ports() == (8080,)
    assert router.gateway_listener(8080) is not None and router.gateway_listener(9) is None
    assert router.sidecar_for(req("http://reviews/")) is None


def test_local_reply_headers_expand_envoy_variables() -> None:
    mesh = build(
        vs(
            "r",
            """
            hosts: [reviews]
            http:
            - directResponse: {status: 503, body: {string: down}}
              headers: {response: {set: {x-served-by: "%HOSTNAME%", x-pct: "100%%"}}}
            """,
        )
    )
    d = route(Router(mesh, hostname="proxy-1"), "http://reviews:9080/")
    assert isinstance(d, LocalReply)
    assert d.headers == (
        ("content-type", "text/plain"),
        ("x-pct", "100%"),
        ("x-served-by", "proxy-1"),
    )


def test_registry_only_still_routes_virtual_service_hosts() -> None:
    config = doc(
        "MeshConfig",
        "mesh",
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY}",
        api="chaoskit.dev/v1alpha1",
    )
    alias = vs(
        "alias", "hosts: [bookinfo.example.com]\nhttp:\n- route: [{destination: {host: reviews}}]"
    )
    mesh = build(config, alias)
    assert isinstance(route(mesh, "http://bookinfo.example.com/"), Forward)
    assert route(mesh, "http://bookinfo.example.com:81/") == BLOCK_ALL


def test_sidecar_egress_listener_ports() -> None:
    sidecar = doc(
        "Sidecar",
        "default",
        """
        egress:
        - port: {number: 9080, protocol: HTTP, name: http}
          hosts: ["./ratings.default.svc.cluster.local"]
        - hosts: ["./*"]
        outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        """,
    )
    mesh = build(sidecar)
    assert route(mesh, "http://reviews:9080/") == BLOCK_ALL  # the 9080 listener does not import it
    assert isinstance(route(mesh, "http://ratings:9080/"), Forward)
