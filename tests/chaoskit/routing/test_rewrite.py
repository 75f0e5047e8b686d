"""URI rewrites and redirect locations (istio/istio ``route.go`` ``ApplyRedirect``, Envoy ``newUri``)."""

from __future__ import annotations

import re

import pytest

from chaoskit.config.http_route import HTTPRedirect, RegexRewrite
from chaoskit.routing import rewrite

from .helpers import entry

PREFIX_A = entry("uri: {prefix: /api}")
PREFIX_A_SLASH = entry("uri: {prefix: /api/}")
EXACT = entry("uri: {exact: /old}")
REGEX = entry("uri: {regex: '/v[0-9]+/.*'}")
HEADERS_ONLY = entry("headers: {x: {exact: '1'}}")
CASELESS = entry("uri: {prefix: /API}\nignoreUriCase: true")


@pytest.mark.parametrize(
    ("match", "path", "query", "new", "expected"),
    [
        (None, "/foo", "", "/v1", "/v1foo"),  # no uri match: the implicit prefix "/" is replaced
        (HEADERS_ONLY, "/foo", "", "/v1", "/v1foo"),
        (HEADERS_ONLY, "/foo", "", "/v1/", "/v1/foo"),
        (PREFIX_A, "/api/x", "", "/", "//x"),  # the trailing-slash trap
        (PREFIX_A_SLASH, "/api/x", "", "/", "/x"),
        (PREFIX_A, "/apix", "", "/v2", "/v2x"),
        (PREFIX_A, "/api/x", "a=1&b", "/v2", "/v2/x?a=1&b"),  # query kept
        (EXACT, "/old", "q=1", "/new", "/new?q=1"),  # exact: whole path
        (REGEX, "/v1/users", "", "/users", "/users"),  # regex: whole path
        (CASELESS, "/api/x", "", "/v2", "/v2/x"),
    ],
)
def test_prefix_rewrite(match: object, path: str, query: str, new: str, expected: str) -> None:
    assert rewrite.prefix_rewrite(path, query, match, new) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "template", "path", "expected"),
    [
        (
            r"^/service/([^/]+)(/.*)$",
            r"\2/instance/\1",
            "/service/foo/v1/api",
            "/v1/api/instance/foo",
        ),
        ("o", "0", "/foo/boo", "/f00/b00"),  # every match is replaced (RE2 GlobalReplace)
        ("^/a/(.*)", r"/b/\1\\x", "/a/z", "/b/z\\x"),  # \\ is a literal backslash
        ("^/(a)?b", r"/[\1]", "/b", "/[]"),  # unmatched group → empty
        ("^/(x)", r"/\2", "/x", "/"),  # a group the pattern lacks → empty
        ("^/(x)", r"/\0", "/x", "//x"),  # \0 is the whole match
    ],
)
def test_regex_rewrite(pattern: str, template: str, path: str, expected: str) -> None:
    rule = RegexRewrite(re.compile(pattern), template)
    assert rewrite.regex_rewrite(path, "", rule) == expected
    assert rewrite.regex_rewrite(path, "k=v", rule) == expected + "?k=v"


def redirect(**kw: object) -> HTTPRedirect:
    return HTTPRedirect(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rd", "scheme", "authority", "path", "query", "expected"),
    [
        (
            redirect(uri="/v1/bookRatings"),
            "http",
            "ratings:9080",
            "/v1/ratings",
            "",
            "http://ratings:9080/v1/bookRatings",
        ),
        (
            redirect(uri="/new"),
            "http",
            "a.com",
            "/old",
            "x=1",
            "http://a.com/new?x=1",
        ),  # query kept
        (
            redirect(uri="/new?y=2"),
            "http",
            "a.com",
            "/old",
            "x=1",
            "http://a.com/new?y=2",
        ),  # own query wins
        (redirect(uri="new"), "http", "a.com", "/old", "", "http://a.com/new"),  # leading / added
        (redirect(authority="b.com"), "http", "a.com:8080", "/p", "q", "http://b.com/p?q"),
        (redirect(scheme="https"), "http", "a.com", "/p", "", "https://a.com/p"),
        (
            redirect(scheme="https"),
            "http",
            "a.com:80",
            "/p",
            "",
            "https://a.com/p",
        ),  # old default port dropped
        (redirect(scheme="https"), "http", "a.com:8080", "/p", "", "https://a.com:8080/p"),
        (
            redirect(port=8443, scheme="https"),
            "http",
            "a.com:8080",
            "/p",
            "",
            "https://a.com:8443/p",
        ),
        # Istio drops an explicit default port, and then Envoy keeps the Host's own port:
        (
            redirect(port=443, scheme="https"),
            "http",
            "a.com:8080",
            "/p",
            "",
            "https://a.com:8080/p",
        ),
        (redirect(port=443, scheme="https"), "http", "a.com", "/p", "", "https://a.com/p"),
        (redirect(port=80), "http", "a.com:8080", "/p", "", "http://a.com:8080/p"),
        (redirect(port=443), "http", "a.com", "/p", "", "http://a.com:443/p"),
        (
            redirect(derive_port="FROM_REQUEST_PORT", scheme="https"),
            "http",
            "a.com",
            "/p",
            "",
            "https://a.com:8080/p",
        ),
        (
            redirect(derive_port="FROM_PROTOCOL_DEFAULT", scheme="https"),
            "http",
            "a.com",
            "/p",
            "",
            "https://a.com/p",
        ),
        (redirect(authority="b.com", port=9000), "http", "a.com", "/", "", "http://b.com:9000/"),
        (redirect(scheme="http"), "http", "[::1]:8080", "/", "", "http://[::1]:8080/"),
        (redirect(port=81), "http", "[::1]:8080", "/", "", "http://[::1]:81/"),
    ],
)
def test_redirect_location(
    rd: HTTPRedirect, scheme: str, authority: str, path: str, query: str, expected: str
) -> None:
    got = rewrite.redirect_location(
        rd,
        scheme=scheme,
        authority=authority,
        path=path,
        query=query,
        match=None,
        listener_port=8080,
    )
    assert got == expected


def test_redirect_prefix_rewrite_replaces_the_matched_prefix_and_keeps_the_query() -> None:
    rd = redirect(prefix_rewrite="/v2")
    got = rewrite.redirect_location(
        rd,
        scheme="http",
        authority="a.com",
        path="/api/x",
        query="k=1",
        match=PREFIX_A,
        listener_port=80,
    )
    assert got == "http://a.com/v2/x?k=1"


def test_redirect_port_translation() -> None:
    assert rewrite.redirect_port(redirect(uri="/"), 8080) is None
    assert rewrite.redirect_port(redirect(derive_port="FROM_REQUEST_PORT"), 8080) == 8080
    assert rewrite.redirect_port(redirect(derive_port="FROM_REQUEST_PORT"), 80) is None
    assert rewrite.redirect_port(redirect(port=443), 80, tls=True) is None


def test_request_url_and_https_redirect() -> None:
    assert rewrite.request_url("http", "a.com:8080", "/p", "q=1") == "http://a.com:8080/p?q=1"
    assert rewrite.https_redirect_location("a.com:8080", "/p", "") == "https://a.com:8080/p"
    assert rewrite.matched_length(None, "") == 0
