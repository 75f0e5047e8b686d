"""Table tests adapted from istio/istio pkg/config/analysis/analyzers/testdata/
serviceentry-missing-addresses-protocol.yaml, serviceentry-address-required-lowercase.yaml,
serviceentry-conflicting-protocol.yaml, serviceentry-no-conflict-protocol.yaml and
serviceentry-conflicting-exportto.yaml (expectations from analyzers_test.go); rules mirrored from
pkg/config/analysis/analyzers/serviceentry/protocoladdresses.go and conflictingserviceentries.go.
Port names are made valid for Istio's webhook where the testdata's are not."""

import pytest

from tests.chaoskit.config.helpers import check, doc


def entry(name: str, ports: str, *, extra: str = "", host: str = "istio.io", ns: str = "default"):
    body = f"hosts: [{host}]\nports: {ports}\nlocation: MESH_EXTERNAL\nresolution: DNS\n{extra}"
    return doc("ServiceEntry", name, body, namespace=ns)


ADDRESSES = [
    entry("service-entry-test-01", "[{number: 443, name: https, protocol: HTTPS}]"),
    entry(
        "service-entry-test-02",
        "[{number: 443, name: https, protocol: HTTPS}]",
        extra="addresses: [10.0.0.1]",
    ),
    entry("service-entry-test-03", "[{number: 443, name: https}]"),
    entry("service-entry-test-04", '[{number: 443, name: https, protocol: ""}]'),
    entry(
        "service-entry-test-06",
        "[{number: 443, name: tcp, protocol: TCP}]",
        extra="addresses: [10.0.0.1]",
    ),
    entry("service-entry-test-07", "[{number: 443, name: tcp, protocol: TCP}]"),
    entry("address-missing-lowercase", "[{number: 22, name: tcp, protocol: tcp}]"),
]


def test_addresses_required_ist0134() -> None:
    v = check(*ADDRESSES)
    assert v.ok, [str(i) for i in v.issues.errors]
    found = [(i.resource, i.path) for i in v.issues.warnings if i.code == "IST0134"]
    assert found == [
        ("ServiceEntry/default/service-entry-test-03", "spec.ports[0]"),
        ("ServiceEntry/default/service-entry-test-04", "spec.ports[0]"),
        ("ServiceEntry/default/service-entry-test-07", "spec.ports[0]"),
        ("ServiceEntry/default/address-missing-lowercase", "spec.ports[0]"),
    ]


def test_services_from_kubernetes_manifests_are_not_analysed() -> None:
    kube = """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{port: 5432, name: tcp-db}]
  selector: {app: db}
"""
    v = check(kube)
    assert [i for i in v.issues if i.code == "IST0134"] == []


HTTPS_13835 = "[{number: 13835, name: https-13835, protocol: HTTPS}]"
HTTP_13835 = "[{number: 13835, name: http-13835, protocol: HTTP}]"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # serviceentry-conflicting-protocol.yaml: both entries reported, other.com is not
        (
            [
                entry("se-https", HTTPS_13835, host="example.com"),
                entry("se-http", HTTP_13835, host="example.com"),
                entry(
                    "se-no-conflict",
                    "[{number: 443, name: https, protocol: HTTPS}]",
                    host="other.com",
                ),
            ],
            ["ServiceEntry/default/se-http", "ServiceEntry/default/se-https"],
        ),
        # serviceentry-no-conflict-protocol.yaml: same protocol twice
        (
            [
                entry("se-https-only", HTTPS_13835, host="example.com"),
                entry("se-https-only-2", HTTPS_13835, host="example.com"),
            ],
            [],
        ),
        # serviceentry-conflicting-exportto.yaml: each entry is only seen in its own namespace
        (
            [
                entry("se-ns1", HTTP_13835, host="example.com", ns="ns1", extra='exportTo: ["."]'),
                entry("se-ns2", HTTPS_13835, host="example.com", ns="ns2", extra='exportTo: ["."]'),
            ],
            [],
        ),
        # a namespace-local entry still meets a public one of another namespace
        (
            [
                entry("se-ns1", HTTP_13835, host="example.com", ns="ns1", extra='exportTo: ["."]'),
                entry("se-all", HTTPS_13835, host="example.com", ns="ns2"),
            ],
            ["ServiceEntry/ns1/se-ns1", "ServiceEntry/ns2/se-all"],
        ),
    ],
)
def test_conflicting_protocols_ist0177(entries: list[str], expected: list[str]) -> None:
    v = check(*entries)
    assert v.ok, [str(i) for i in v.issues.errors]
    assert sorted(i.resource for i in v.issues.warnings if i.code == "IST0177") == expected
