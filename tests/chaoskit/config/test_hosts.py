import pytest

from chaoskit.config.hosts import check_host, expand, matches, overlaps, short_forms


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("reviews", "default", "reviews.default.svc.cluster.local"),
        ("reviews", "prod", "reviews.prod.svc.cluster.local"),
        ("reviews.prod", "default", "reviews.prod"),
        ("Reviews.Example.com.", "default", "reviews.example.com"),
        ("*", "default", "*"),
        ("*.example.com", "default", "*.example.com"),
        ("10.0.0.1", "default", "10.0.0.1"),
    ],
)
def test_short_names_expand_only_without_a_dot(host, namespace, expected):
    assert expand(host, namespace) == expected


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.foo.com", "a.foo.com", True),
        ("*.foo.com", "a.b.foo.com", True),
        ("*.foo.com", "foo.com", False),
        ("*", "anything.example", True),
        ("a.foo.com", "a.foo.com", True),
        ("a.foo.com", "b.foo.com", False),
        ("*.foo.com", "*.a.foo.com", True),
        # Partial wildcards are plain suffixes (istio/istio pkg/config/host/name.go Matches).
        ("*foo.com", "afoo.com", True),
        ("*foo.com", "foo.com", True),
        ("*-foo.com", "a-foo.com", True),
        ("*-foo.com", "afoo.com", False),
        ("*foo.com", "*.foo.com", True),
    ],
)
def test_wildcard_matching(pattern, host, expected):
    assert matches(pattern, host) is expected


def test_overlaps_is_symmetric():
    assert overlaps("*.foo.com", "a.foo.com") and overlaps("a.foo.com", "*.foo.com")
    assert not overlaps("a.foo.com", "b.foo.com")


@pytest.mark.parametrize("bad", ["foo*.com", "*foo.com", "a.*.com", "-bad.com", "", "a..b"])
def test_invalid_hosts(bad):
    assert check_host(bad) is not None


@pytest.mark.parametrize("host", ["*x", "*foo.com", "*-foo.com", "*.foo.com", "a.com."])
def test_partial_wildcards_are_valid_where_allowed(host):
    # agent/validation.go ValidateWildcardDomain, labels.IsWildcardDNS1123Label.
    assert check_host(host, allow_partial=True) is None


@pytest.mark.parametrize("host", ["*foo.com", "*-foo.com"])
def test_partial_wildcards_refused_by_default(host):
    # agent/validation.go ValidatePartialWildCard (Gateway and Sidecar hosts).
    assert "partial wildcard" in (check_host(host) or "")


def test_wildcards_can_be_refused():
    assert check_host("*", allow_wildcard=False) is not None
    assert check_host("*.a.com", allow_wildcard=False) is not None
    assert check_host("1.2.3.4", allow_ip=False) is not None


def test_short_forms_depend_on_client_namespace():
    fq = "reviews.default.svc.cluster.local"
    assert "reviews" in short_forms(fq, "default")
    assert "reviews" not in short_forms(fq, "other")
    assert "reviews.default" in short_forms(fq, "other")
    assert short_forms("api.example.com", "default") == ["api.example.com"]
