"""Which attempts an UpstreamFault targets: host, subset, endpoint labels, endpoint, match."""

from __future__ import annotations

import pytest

from chaoskit.faults.targeting import same_endpoint, targets

from .helpers import PAYMENTS, fault, host, request

DEFAULT_ABORT = "abort: {httpStatus: 503}\n"


def hits(spec: str, *, fqdn: str = PAYMENTS, subset: str | None = None, **kw: object) -> bool:
    endpoint = kw.pop("endpoint", host())
    req = kw.pop("request", request())
    assert not kw
    return targets(
        fault(spec + DEFAULT_ABORT),
        host_fqdn=fqdn,
        subset=subset,
        endpoint=endpoint,  # type: ignore[arg-type]
        request=req,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("spec", "fqdn", "expected"),
    [
        ("host: payments", PAYMENTS, True),
        ("host: payments", "orders.default.svc.cluster.local", False),
        ("host: payments", "payments.other.svc.cluster.local", False),  # namespace expanded
        ("host: payments.other.svc.cluster.local", "payments.other.svc.cluster.local", True),
        ("host: payments.other", "payments.other.svc.cluster.local", False),  # dotted: as is
        ("host: payments", PAYMENTS.upper() + ".", True),  # DNS names ignore case and a root dot
        ("host: '*.example.com'", "api.example.com", True),
        ("host: '*.example.com'", "example.com", False),
        ("host: api.example.com", "api.example.com", True),
    ],
)
def test_host(spec: str, fqdn: str, expected: bool) -> None:
    assert hits(spec + "\n", fqdn=fqdn) is expected


@pytest.mark.parametrize(("subset", "expected"), [("v2", True), ("v1", False), (None, False)])
def test_subset_must_equal_when_set(subset: str | None, expected: bool) -> None:
    assert hits("host: payments\nsubset: v2\n", subset=subset) is expected


def test_no_subset_targets_every_subset() -> None:
    assert hits("host: payments\n", subset="v1")
    assert hits("host: payments\n", subset=None)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"zone": "a"}, True),
        ({"zone": "a", "version": "v2"}, True),  # a superset is fine
        ({"zone": "b"}, False),
        ({"version": "v2"}, False),
        ({}, False),
    ],
)
def test_endpoint_labels(labels: dict[str, str], expected: bool) -> None:
    spec = "host: payments\nendpointLabels: {zone: a}\n"
    assert hits(spec, endpoint=host(labels=labels)) is expected


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        ("127.0.0.1", 9082, True),
        ("127.0.0.1", 9081, False),
        ("127.0.0.2", 9082, False),
    ],
)
def test_endpoint_address_and_port(address: str, port: int, expected: bool) -> None:
    spec = "host: payments\nendpoint: 127.0.0.1:9082\n"
    assert hits(spec, endpoint=host(address, port)) is expected


def test_ipv6_endpoint_compares_addresses_not_spellings() -> None:
    f = fault("host: payments\nendpoint: '[::1]:9082'\n" + DEFAULT_ABORT)
    assert f.endpoint is not None
    assert same_endpoint(f.endpoint, host("0:0::1", 9082))
    assert same_endpoint(f.endpoint, host("::1", 9082))
    assert not same_endpoint(f.endpoint, host("::2", 9082))


def test_hostname_endpoint() -> None:
    f = fault("host: payments\nendpoint: pay-1.local:9082\n" + DEFAULT_ABORT)
    assert f.endpoint is not None
    assert same_endpoint(f.endpoint, host("Pay-1.local", 9082))


def test_match_entries_are_ored_and_none_means_every_request() -> None:
    spec = (
        "host: payments\nmatch:\n- headers: {x-chaos: {exact: 'yes'}}\n- uri: {prefix: /charge}\n"
    )
    assert hits(spec, request=request("/charge/1"))
    assert hits(spec, request=request("/", {"x-chaos": "yes"}))
    assert not hits(spec, request=request("/refund", {"x-chaos": "no"}))
    assert hits("host: payments\n", request=request("/anything"))


def test_every_condition_must_hold() -> None:
    spec = "host: payments\nsubset: v2\nendpointLabels: {zone: a}\nmatch: [{uri: {prefix: /a}}]\n"
    ok = {"subset": "v2", "endpoint": host(labels={"zone": "a"}), "request": request("/a")}
    assert hits(spec, **ok)  # type: ignore[arg-type]
    for key, bad in (("subset", "v1"), ("endpoint", host()), ("request", request("/b"))):
        assert not hits(spec, **{**ok, key: bad}), key  # type: ignore[arg-type]
