"""Table tests adapted from istio/istio pkg/config/analysis/analyzers/testdata/
virtualservice_host_not_found_gateway.yaml and conflicting-gateways.yaml (expectations from
analyzers_test.go); the route destinations use the test registry's ``ratings`` ServiceEntry, and
server port names are made unique (Istio's webhook requires it; its analyzer testdata does not)."""

import pytest

from tests.chaoskit.config.helpers import check, doc


def gateway(name: str, *servers: str, namespace: str = "istio-system") -> str:
    body = "selector: {istio: ingressgateway}\nservers:\n" + "".join(f"- {s}\n" for s in servers)
    return doc("Gateway", name, body, namespace=namespace)


def bound_vs(name: str, gateways: list[str], hosts: list[str]) -> str:
    return doc(
        "VirtualService",
        name,
        f"gateways: {gateways}\nhosts: {hosts}\n"
        "http: [{match: [{uri: {prefix: /}}], route: [{destination: {host: ratings}}]}]",
    )


def http_server(*hosts: str, name: str = "http") -> str:
    return f"{{hosts: {list(hosts)}, port: {{name: {name}, number: 80, protocol: HTTP}}}}"


HOST_NOT_FOUND = [
    gateway("gw-01", http_server("testing-01.com")),
    bound_vs("svc-01-ok", ["istio-system/gw-01"], ["testing-01.com"]),
    bound_vs("svc-01-bad", ["istio-system/gw-01"], ["wrong-01.com"]),
    gateway("gw-02", http_server("*.testing-02.com")),
    bound_vs("svc-02-ok", ["istio-system/gw-02"], ["web.testing-02.com"]),
    bound_vs("svc-02-bad", ["istio-system/gw-02"], ["web.wrong.com"]),
    gateway("gw-03a", http_server("*.api.testing-03.com")),
    gateway("gw-03b", http_server("*.homepage.testing-03.com")),
    bound_vs(
        "svc-03-ok",
        ["istio-system/gw-03a", "istio-system/gw-03b"],
        ["user.api.testing-03.com", "profile.homepage.testing-03.com"],
    ),
    bound_vs(
        "svc-03-bad", ["istio-system/gw-03a", "istio-system/gw-03b"], ["user.api.testing-03.com"]
    ),
    gateway(
        "gw-04",
        http_server("*.testing-01-04.com"),
        http_server("web.testing-02-04.com", name="http2"),
    ),
    bound_vs("svc-04-ok", ["istio-system/gw-04"], ["web.testing-02-04.com"]),
    bound_vs("svc-04-ok-wild", ["istio-system/gw-04"], ["profile.user.testing-01-04.com"]),
    bound_vs(
        "svc-04-bad", ["istio-system/gw-04"], ["user.testing-02-04.com", "users.testing-02-04.com"]
    ),
]


def test_virtual_service_host_not_found_in_gateway_ist0132():
    v = check(*HOST_NOT_FOUND)
    assert v.ok
    found = [(i.resource, i.path) for i in v.issues.warnings if i.code == "IST0132"]
    assert found == [
        ("VirtualService/default/svc-01-bad", "spec.gateways[0]"),
        ("VirtualService/default/svc-02-bad", "spec.gateways[0]"),
        ("VirtualService/default/svc-03-bad", "spec.gateways[1]"),
        ("VirtualService/default/svc-04-bad", "spec.gateways[0]"),
    ]


TCP_80 = "{hosts: [foo.bar], port: {name: tcp, number: 80, protocol: TCP}}"
HTTP_80 = "{hosts: [foo.bar], port: {name: http, number: 80, protocol: HTTP}}"
HTTP_81 = "{hosts: [foo.bar], port: {name: http, number: 81, protocol: HTTP}}"


@pytest.mark.parametrize(
    ("beta", "alpha", "expected"),
    [
        # conflicting-gateways.yaml: same selector, port and host, both reported
        (TCP_80, HTTP_80, ["Gateway/default/alpha", "Gateway/default/beta"]),
        # gateway-different-port.yaml: no conflict
        (HTTP_81, HTTP_80, []),
    ],
)
def test_conflicting_gateways_ist0145(beta, alpha, expected):
    v = check(
        gateway("beta", beta, namespace="default"), gateway("alpha", alpha, namespace="default")
    )
    assert v.ok
    assert sorted(i.resource for i in v.issues.warnings if i.code == "IST0145") == expected


def https_gateway(name: str, credential: str, namespace: str, *, internal: bool = False) -> str:
    selector = "{istio: ingressgateway, type: internal}" if internal else "{istio: ingressgateway}"
    server = (
        f"{{hosts: [{name}.example.com], port: {{name: https, number: 443, protocol: HTTPS}}, "
        f"tls: {{mode: SIMPLE, credentialName: {credential}}}}}"
    )
    return doc("Gateway", name, f"selector: {selector}\nservers:\n- {server}", namespace=namespace)


# gateway-duplicate-certificate.yaml: reported on a Gateway when another one whose selector
# includes all its labels serves the same credential (not the other way round).
DUPLICATE_CERTIFICATES = [
    https_gateway("gateway-01-test-01", "test-01-wildcard-cert", "istio-system"),
    https_gateway("gateway-02-test-01", "test-01-wildcard-cert", "istio-system"),
    https_gateway("gateway-01-test-02", "test-02-wildcard-cert", "istio-system"),
    https_gateway("gateway-02-test-02", "test-02-wildcard-cert", "istio-system", internal=True),
    https_gateway("gateway-01-test-03", "test-03-wildcard-cert", "default"),
    https_gateway("gateway-02-test-03", "test-03-wildcard-cert", "istio-system", internal=True),
    https_gateway("gateway-01-test-04", "01-test-04-wildcard-cert", "istio-system"),
    https_gateway("gateway-02-test-04", "02-test-04-wildcard-cert", "istio-system"),
    gateway("gateway-03-test-06", http_server("03.test-06.com"), namespace="default"),
    gateway("gateway-04-test-06", http_server("04.test-06.com"), namespace="default"),
]


def test_duplicate_certificate_ist0138():
    v = check(*DUPLICATE_CERTIFICATES)
    assert v.ok, [str(i) for i in v.issues.errors]
    assert [i.resource for i in v.issues.warnings if i.code == "IST0138"] == [
        "Gateway/istio-system/gateway-01-test-01",
        "Gateway/istio-system/gateway-02-test-01",
        "Gateway/istio-system/gateway-01-test-02",
        "Gateway/default/gateway-01-test-03",
    ]


def test_same_certificate_files_count_as_duplicates():
    files = "serverCertificate: /etc/cert.pem, privateKey: /etc/key.pem"
    server = (
        "{hosts: [a.example.com], port: {name: https, number: 443, protocol: HTTPS}, "
        f"tls: {{mode: SIMPLE, {files}}}}}"
    )
    v = check(gateway("a", server), gateway("b", server.replace("a.example", "b.example")))
    assert [i.resource for i in v.issues.warnings if i.code == "IST0138"] == [
        "Gateway/istio-system/a",
        "Gateway/istio-system/b",
    ]


def test_conflicting_gateways_through_a_workload_both_select_ist0145():
    """conflicting-gateways-subSelector.yaml: different selectors, one pod (here a WorkloadEntry)
    selected by both."""
    beta = doc(
        "Gateway",
        "beta",
        "selector: {istio: ingressgateway, app: istio-ingressgateway, cusKey: cusValue}\n"
        f"servers:\n- {TCP_80}",
    )
    alpha = doc(
        "Gateway",
        "alpha",
        f"selector: {{istio: ingressgateway, cusKey: cusValue}}\nservers:\n- {HTTP_80}",
    )
    pod = doc(
        "WorkloadEntry",
        "my-ingressgateway-1",
        "labels: {istio: ingressgateway, app: istio-ingressgateway, cusKey: cusValue}",
    )
    assert [i.resource for i in check(beta, alpha).issues.warnings if i.code == "IST0145"] == []
    v = check(beta, alpha, pod)
    assert sorted(i.resource for i in v.issues.warnings if i.code == "IST0145") == [
        "Gateway/default/alpha",
        "Gateway/default/beta",
    ]
