"""Every HTTPMatchRequest field, as Envoy evaluates Istio's translation (``TranslateRouteMatch``)."""

from __future__ import annotations

import pytest

from chaoskit.routing.matcher import (
    CATCH_ALL,
    first_match,
    header_value,
    is_catch_all,
    matches,
    raw_query_params,
    request_matches,
    route_matches,
    selected_entries,
    selects,
)
from chaoskit.routing.request import ANONYMOUS, Workload

from .helpers import entry, req, rule

URL = "http://reviews:9080"


def hit(match_yaml: str, url: str = URL + "/", gateway: str = "mesh", **kw: object) -> bool:
    return matches(entry(match_yaml), req(url, **kw), gateway)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("match", "path", "expected"),
    [
        ("uri: {exact: /productpage}", "/productpage", True),
        ("uri: {exact: /productpage}", "/productpage/", False),
        ("uri: {exact: /productpage}", "/ProductPage", False),
        ("uri: {exact: /productpage}\nignoreUriCase: true", "/ProductPage", True),
        ("uri: {prefix: /foo}", "/foobar", True),  # a raw string prefix, not a path segment
        ("uri: {prefix: /foo}", "/fo", False),
        ("uri: {prefix: /Foo}", "/foo/x", False),
        ("uri: {prefix: /Foo}\nignoreUriCase: true", "/foo/x", True),
        ("uri: {regex: '/api/v[0-9]+'}", "/api/v12", True),
        ("uri: {regex: '/api/v[0-9]+'}", "/api/v12/x", False),  # must match the whole path
        ("uri: {regex: '/api/v[0-9]+'}", "/x/api/v1", False),
        (
            "uri: {regex: '/API'}\nignoreUriCase: true",
            "/api",
            False,
        ),  # ignoreUriCase: exact/prefix only
        ("uri: {regex: '(?i)/API'}", "/api", True),
    ],
)
def test_uri(match: str, path: str, expected: bool) -> None:
    assert hit(match, URL + path) is expected


def test_uri_ignores_the_query_string() -> None:
    assert hit("uri: {exact: /login}", URL + "/login?next=/x")
    assert hit("uri: {regex: '/[a-z]+'}", URL + "/login?a=1")


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("method: {exact: GET}", True),
        ("method: {exact: get}", False),  # case-sensitive
        ("method: {regex: 'GET|HEAD'}", True),
        ("scheme: {exact: http}", True),
        ("scheme: {exact: https}", False),
        ("authority: {exact: 'reviews:9080'}", True),  # :authority as sent, port included
        ("authority: {exact: reviews}", False),
        ("authority: {prefix: reviews}", True),
    ],
)
def test_pseudo_header_fields(match: str, expected: bool) -> None:
    assert hit(match) is expected


def test_request_routing_header_is_exact_and_case_sensitive() -> None:
    m = "headers: {end-user: {exact: jason}}"
    assert hit(m, headers={"end-user": "jason"})
    assert not hit(m, headers={"end-user": "Jason"})
    assert not hit(m)


@pytest.mark.parametrize(
    ("match", "headers", "expected"),
    [
        ("headers: {x-v: {prefix: ab}}", {"x-v": "abc"}, True),
        ("headers: {x-v: {prefix: ab}}", {"x-v": "xab"}, False),
        ("headers: {x-v: {regex: 'a.c'}}", {"x-v": "abc"}, True),
        ("headers: {x-v: {regex: 'a.c'}}", {"x-v": "abcd"}, False),
        ("headers: {x-v: {}}", {"x-v": ""}, True),  # {} is a presence check
        ("headers: {x-v: {}}", {}, False),
        ("headers: {X-V: {exact: a}}", {"x-v": "a"}, True),  # names are case-insensitive
        ("headers: {x-v: {exact: 'a,b'}}", {"x-v": "a,b"}, True),  # repeated, joined
        ("headers: {x-a: {exact: '1'}, x-b: {exact: '2'}}", {"x-a": "1"}, False),  # AND
        ("headers: {':path': {prefix: /a?}}", {}, False),
        ("headers: {host: {exact: 'reviews:9080'}}", {}, True),
        ("headers: {':authority': {prefix: rev}}", {}, True),
        ("headers: {'@request.auth.claims.group': {exact: admin}}", {}, False),
    ],
)
def test_headers(match: str, headers: dict[str, str], expected: bool) -> None:
    assert hit(match, headers=headers) is expected


def test_path_pseudo_header_includes_the_query() -> None:
    assert hit("headers: {':path': {exact: /a?x=1}}", URL + "/a?x=1")


@pytest.mark.parametrize(
    ("match", "headers", "expected"),
    [
        ("withoutHeaders: {x-v: {exact: v}}", {}, True),  # missing counts as ""
        ("withoutHeaders: {x-v: {exact: v}}", {"x-v": "v"}, False),
        ("withoutHeaders: {x-v: {exact: v}}", {"x-v": "w"}, True),
        ("withoutHeaders: {x-v: {exact: ''}}", {}, False),  # "" matches the empty stand-in
        ("withoutHeaders: {x-v: {}}", {}, True),  # {} means "absent"
        ("withoutHeaders: {x-v: {}}", {"x-v": ""}, False),
        ("withoutHeaders: {x-v: {regex: '*'}}", {"x-v": "a"}, False),  # '*' is presence too
        ("withoutHeaders: {x-v: {prefix: a}}", {"x-v": "abc"}, False),
        ("withoutHeaders: {'@request.auth.claims.group': {exact: a}}", {}, True),
    ],
)
def test_without_headers(match: str, headers: dict[str, str], expected: bool) -> None:
    assert hit(match, headers=headers) is expected


@pytest.mark.parametrize(
    ("match", "query", "expected"),
    [
        ("queryParams: {debug: {exact: ''}}", "debug", True),  # ?key has value ""
        ("queryParams: {debug: {exact: ''}}", "debug=", True),
        ("queryParams: {debug: {exact: ''}}", "debug=1", False),
        ("queryParams: {debug: {exact: ''}}", "", False),
        ("queryParams: {debug: {}}", "debug=anything", True),
        ("queryParams: {debug: {}}", "other=1", False),
        ("queryParams: {id: {regex: '\\d+'}}", "id=123", True),
        ("queryParams: {id: {regex: '\\d+$'}}", "id=a123", False),  # full match
        ("queryParams: {id: {exact: '1'}}", "id=1&id=2", True),  # first value
        ("queryParams: {id: {exact: '2'}}", "id=1&id=2", False),
        ("queryParams: {q: {exact: 'a%20b'}}", "q=a%20b", True),  # not decoded
        ("queryParams: {q: {exact: 'a b'}}", "q=a%20b", False),
        ("queryParams: {Q: {exact: '1'}}", "q=1", False),  # names are case-sensitive
    ],
)
def test_query_params(match: str, query: str, expected: bool) -> None:
    assert hit(match, f"{URL}/p?{query}") is expected


def test_raw_query_params() -> None:
    assert raw_query_params("a=1&b&c=&a=2&&d=x=y") == {"a": "1", "b": "", "c": "", "d": "x=y"}


def test_port_is_the_port_the_proxy_serves() -> None:
    assert hit("port: 9080")
    assert not hit("port: 9090")


def test_source_labels_are_a_subset_of_the_callers_labels() -> None:
    m = "sourceLabels: {app: reviews, version: v2}"
    caller = Workload("reviews-v2", "default", {"app": "reviews", "version": "v2", "zone": "a"})
    assert hit(m, source=caller)
    assert not hit(m, source=Workload("reviews-v1", "default", {"app": "reviews", "version": "v1"}))
    assert not hit(m, source=ANONYMOUS)


def test_source_namespace() -> None:
    m = "sourceNamespace: prod"
    assert hit(m, source=Workload("a", "prod"))
    assert not hit(m, source=Workload("a", "default"))


def test_gateways_override_and_replace_the_source_checks() -> None:
    assert hit("gateways: [mesh]")
    assert not hit("gateways: [mesh]", gateway="istio-system/ingress")
    assert hit("gateways: [istio-system/ingress]", gateway="istio-system/ingress")
    assert hit("gateways: [ingress]", gateway="default/ingress")  # short names are the VS's ns
    # Istio's sourceMatchHTTP: with gateways set, sourceLabels are not checked at all.
    assert hit("gateways: [mesh]\nsourceLabels: {app: nobody}")
    assert not hit("sourceLabels: {app: nobody}")


def test_selectors_and_request_conditions_split() -> None:
    m = entry("port: 9080\nuri: {prefix: /a}")
    r = req(URL + "/b")
    assert selects(m, 9080, ANONYMOUS, "mesh")
    assert not selects(m, 80, ANONYMOUS, "mesh")
    assert not request_matches(m, r)


def test_route_matches_ors_entries_and_no_entries_match_everything() -> None:
    r = rule(
        """
        match:
        - uri: {exact: /a}
        - headers: {x: {exact: '1'}}
        route: [{destination: {host: reviews}}]
        """
    )
    assert route_matches(r, req(URL + "/a"), "mesh")
    assert route_matches(r, req(URL + "/b", headers={"x": "1"}), "mesh")
    assert not route_matches(r, req(URL + "/b"), "mesh")
    assert first_match(r, req(URL + "/b", headers={"x": "1"}), "mesh") is r.match[1]
    catch_all = rule("route: [{destination: {host: reviews}}]")
    assert first_match(catch_all, req(URL + "/anything"), "mesh") is CATCH_ALL
    assert route_matches(catch_all, req(URL + "/anything"), "mesh")


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("uri: {prefix: /}", True),
        ("uri: {regex: '.*'}", True),
        ("ignoreUriCase: true", True),
        ("sourceLabels: {app: a}", True),  # selectors were applied at config time
        ("port: 9080", True),
        ("uri: {prefix: /a}", False),
        ("uri: {prefix: /}\nheaders: {x: {}}", False),
        ("uri: {prefix: /}\nmethod: {exact: GET}", False),
        ("queryParams: {x: {}}", False),
    ],
)
def test_is_catch_all(match: str, expected: bool) -> None:
    assert is_catch_all(entry(match)) is expected


def test_selected_entries_drop_unselected_and_stop_after_a_catch_all() -> None:
    from .helpers import build, first_vs, vs

    mesh = build(
        vs(
            "r",
            """
            hosts: [reviews]
            http:
            - match: [{uri: {prefix: /a}, sourceLabels: {app: x}}, {uri: {prefix: /b}}]
              route: [{destination: {host: reviews}}]
            - match: [{uri: {prefix: /}}, {uri: {prefix: /c}}]
              route: [{destination: {host: ratings}}]
            - route: [{destination: {host: reviews}}]
            """,
        ),
        strict=False,
    )
    http = first_vs(mesh).http
    got = selected_entries(http, 9080, ANONYMOUS, "mesh")
    assert [(r.index, m.uri.value if m.uri else None) for r, m in got] == [(0, "/b"), (1, "/")]
    selected = selected_entries(http, 9080, Workload("x", labels={"app": "x"}), "mesh")
    assert len(selected) == 3


def test_header_value_reads_pseudo_headers() -> None:
    r = req(URL + "/p?q=1", method="POST", headers={"x": "y"})
    assert header_value(r, ":method") == "POST"
    assert header_value(r, ":scheme") == "http"
    assert header_value(r, ":path") == "/p?q=1"
    assert header_value(r, "Host") == "reviews:9080"
    assert header_value(r, "X") == "y"
    assert header_value(r, "absent") is None
