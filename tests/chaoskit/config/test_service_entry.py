"""ServiceEntry / WorkloadEntry parsing, Istio's validation rules, and endpoint port precedence."""

from __future__ import annotations

import textwrap

import pytest

from chaoskit.config.loader import LoadResult, load_text
from chaoskit.config.service_entry import Endpoint, ServiceEntry, ServicePort, WorkloadEntry


def load(kind: str, spec: str, name: str = "se") -> LoadResult:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    head = f"apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n"
    text = f"{head}spec:\n{body}\n"
    return load_text(text)


def only(result: LoadResult) -> ServiceEntry:
    assert not result.issues.errors, [str(i) for i in result.issues]
    (se,) = result.resources
    assert isinstance(se, ServiceEntry)
    return se


BOOKINFO_REVIEWS = """
hosts: [reviews]
location: MESH_INTERNAL
ports:
- number: 9080
  name: http
  protocol: HTTP
resolution: STATIC
endpoints:
- address: 127.0.0.1
  ports: {http: 9081}
  labels: {app: reviews, version: v1}
- address: 127.0.0.1
  ports: {http: 9082}
  labels: {app: reviews, version: v2}
- address: 127.0.0.1
  ports: {http: 9083}
  labels: {app: reviews, version: v3}
"""


def test_bookinfo_static_reviews() -> None:
    result = load("ServiceEntry", BOOKINFO_REVIEWS, name="reviews")
    se = only(result)
    assert not result.issues.warnings
    assert se.hosts == ("reviews",)
    assert se.mesh_location == "MESH_INTERNAL"
    assert se.resolution == "STATIC"
    assert se.ports == (ServicePort(9080, "http", "HTTP"),)
    assert [e.labels["version"] for e in se.endpoints] == ["v1", "v2", "v3"]
    port = se.port("http")
    assert port is not None and se.port(9080) is port
    assert [e.port_for(port) for e in se.endpoints] == [9081, 9082, 9083]
    assert all(e.address == "127.0.0.1" and e.effective_weight == 1 for e in se.endpoints)


def test_dns_httpbin() -> None:
    se = only(
        load(
            "ServiceEntry",
            """
        hosts: [httpbin.org]
        ports:
        - {number: 80, name: http-port, protocol: HTTP}
        resolution: DNS
        location: MESH_EXTERNAL
    """,
        )
    )
    assert se.resolution == "DNS" and se.endpoints == ()
    assert se.ports[0].number == 80


def test_defaults_and_case_insensitive_protocol() -> None:
    se = only(
        load(
            "ServiceEntry",
            """
        hosts: [api.example.com]
        ports: [{number: 443, name: https, protocol: https}]
    """,
        )
    )
    assert se.mesh_location == "MESH_EXTERNAL"
    assert se.resolution == "NONE"
    assert se.ports[0].protocol == "HTTPS"
    assert se.workload_selector is None


def test_google_apis_two_ports_dns_with_weights_and_selector_free() -> None:
    se = only(
        load(
            "ServiceEntry",
            """
        hosts: [www.googleapis.com]
        ports:
        - {number: 80, name: http, protocol: HTTP}
        - {number: 443, name: https, protocol: HTTPS, targetPort: 8443}
        resolution: DNS
        endpoints:
        - {address: www.googleapis.com, weight: 3, locality: us-east1/b, serviceAccount: gapi}
    """,
        )
    )
    (ep,) = se.endpoints
    assert ep.effective_weight == 3 and ep.locality == "us-east1/b"
    https = se.port(443)
    assert https is not None and ep.port_for(https) == 8443


def test_workload_selector() -> None:
    se = only(
        load(
            "ServiceEntry",
            """
        hosts: [details.bookinfo.com]
        ports: [{number: 9080, name: http, protocol: HTTP}]
        location: MESH_INTERNAL
        resolution: STATIC
        workloadSelector:
          labels: {app: details}
    """,
        )
    )
    assert se.workload_selector == {"app": "details"}


def test_static_without_endpoints_warns_503() -> None:
    result = load(
        "ServiceEntry",
        """
        hosts: [ratings]
        ports: [{number: 9080, name: http, protocol: HTTP}]
        resolution: STATIC
    """,
    )
    assert not result.issues.errors
    (w,) = result.issues.warnings
    assert w.path == "spec.endpoints" and "503 no healthy upstream" in w.message


def test_issue_points_at_the_item_line() -> None:
    result = load(
        "ServiceEntry",
        """
        hosts:
        - ok.example.com
        - "*"
        ports: [{number: 80, name: http, protocol: HTTP}]
    """,
    )
    (err,) = result.issues.errors
    assert err.path == "spec.hosts[1]"
    assert err.location.line == 8


def test_workload_entry_productpage() -> None:
    result = load(
        "WorkloadEntry",
        """
        labels: {app: productpage, version: v1}
        serviceAccount: bookinfo-productpage
    """,
        name="productpage",
    )
    assert not result.issues
    (we,) = result.resources
    assert isinstance(we, WorkloadEntry)
    assert we.name == "productpage" and we.address is None
    assert we.labels == {"app": "productpage", "version": "v1"}
    assert we.endpoint.labels == we.labels and we.endpoint.service_account == "bookinfo-productpage"


PORT80 = "ports: [{number: 80, name: http, protocol: HTTP}]"
A = f"hosts: [a.com]\n{PORT80}\n"  # a valid start, NONE resolution


def with_endpoints(resolution: str, *endpoints: str) -> str:
    return f"{A}resolution: {resolution}\nendpoints: [{', '.join(endpoints)}]"


INVALID_SE = [
    # hosts
    (PORT80, "spec.hosts", "at least one host"),
    (f"hosts: ['*']\n{PORT80}", "spec.hosts[0]", "invalid host *"),
    (f"hosts: ['foo*.com']\n{PORT80}", "spec.hosts[0]", "not a valid DNS name"),
    (f"hosts: [a.com, 3]\n{PORT80}", "spec.hosts[1]", "must be a string"),
    # addresses
    (f"{A}addresses: [nope]", "spec.addresses[0]", "not an IP address or CIDR"),
    (
        f"{A}addresses: [10.0.0.0/24]\nresolution: DNS",
        "spec.addresses[0]",
        "CIDR addresses are allowed only for NONE/STATIC",
    ),
    # ports
    (
        "hosts: [a.com]\nports: [{number: 80, name: http}, {number: 81, name: http}]",
        "spec.ports[1].name",
        'port name "http" is already defined',
    ),
    (
        "hosts: [a.com]\nports: [{number: 80, name: a}, {number: 80, name: b}]",
        "spec.ports[1].number",
        "port 80 is already defined",
    ),
    (
        "hosts: [a.com]\nports: [{number: 80, name: a, protocol: HTTPX}]",
        "spec.ports[0].protocol",
        'unsupported protocol "HTTPX"',
    ),
    (
        "hosts: [a.com]\nports: [{number: 53, name: dns, protocol: UDP}]",
        "spec.ports[0].protocol",
        "UDP is not supported",
    ),
    ("hosts: [a.com]\nports: [{number: 0, name: a}]", "spec.ports[0].number", "0 is less than 1"),
    (
        "hosts: [a.com]\nports: [{number: 70000, name: a}]",
        "spec.ports[0].number",
        "is larger than 65535",
    ),
    (
        "hosts: [a.com]\nports: [{number: 80, name: Web_Port}]",
        "spec.ports[0].name",
        "invalid port name",
    ),
    ("hosts: [a.com]\nports: [{name: a}]", "spec.ports[0]", '"number" is required'),
    # selector xor endpoints, enums, typos
    (
        with_endpoints("STATIC", "{address: 10.0.0.1}") + "\nworkloadSelector: {labels: {app: a}}",
        "spec",
        "only one of workloadSelector or endpoints",
    ),
    (f"{A}resolution: STATICS", "spec.resolution", 'did you mean "STATIC"'),
    (f"{A}location: EXTERNAL", "spec.location", "is not one of"),
    (
        f"{A}resolution: STATIC\nendpoint: [{{address: 10.0.0.1}}]",
        "spec.endpoint",
        'did you mean "endpoints"',
    ),
    # NONE
    (
        with_endpoints("NONE", "{address: 10.0.0.1}"),
        "spec.endpoints",
        "no endpoints should be provided for resolution type NONE",
    ),
    # STATIC
    (
        with_endpoints("STATIC", "{address: backend.a.com}"),
        "spec.endpoints[0].address",
        "must be an IP address or a unix:// path",
    ),
    (
        with_endpoints("STATIC", "{address: 10.0.0.1, ports: {grpc: 9000}}"),
        "spec.endpoints[0].ports",
        'port name "grpc" is not defined',
    ),
    (
        with_endpoints("STATIC", "{address: 'unix://sock'}"),
        "spec.endpoints[0].address",
        "not an absolute path",
    ),
    (
        with_endpoints("STATIC", "{address: 'unix:///s.sock', ports: {http: 1}}"),
        "spec.endpoints[0].ports",
        "must not include ports",
    ),
    (
        with_endpoints("STATIC", "{address: 10.0.0.1, labels: {version: 2}}"),
        "spec.endpoints[0].labels.version",
        "must be a string",
    ),
    (
        with_endpoints("STATIC", "{address: 10.0.0.1, labels: {'bad key!': x}}"),
        "spec.endpoints[0].labels.bad key!",
        "invalid label key",
    ),
    (
        with_endpoints("STATIC", "{address: 10.0.0.1, weight: -1}"),
        "spec.endpoints[0].weight",
        "-1 is less than 0",
    ),
    (with_endpoints("STATIC", "{weight: 1}"), "spec.endpoints[0]", '"address" is required'),
    # DNS / DNS_ROUND_ROBIN
    (
        f"hosts: ['*.a.com']\n{PORT80}\nresolution: DNS",
        "spec.hosts[0]",
        "hosts must be FQDN if no endpoints are provided for resolution mode DNS",
    ),
    (
        with_endpoints("DNS_ROUND_ROBIN", "{address: b.com}", "{address: c.com}"),
        "spec.endpoints",
        "0 or 1 endpoint",
    ),
    (
        with_endpoints("DNS", "{address: 'unix:///s.sock'}"),
        "spec.endpoints[0].address",
        "not a valid FQDN or an IP address",
    ),
    (
        with_endpoints("DNS", "{address: b_c.com}"),
        "spec.endpoints[0].address",
        "not a valid DNS name",
    ),
    # DYNAMIC_DNS
    (f"{A}resolution: DYNAMIC_DNS", "spec.hosts[0]", "must be a wildcard"),
    (
        "hosts: ['*.a.com']\nports: [{number: 3306, name: db, protocol: TCP}]\n"
        "resolution: DYNAMIC_DNS",
        "spec.ports",
        "DYNAMIC_DNS supports only",
    ),
    (
        f"hosts: ['*.a.com']\naddresses: [10.0.0.1]\n{PORT80}\nresolution: DYNAMIC_DNS",
        "spec.addresses[0]",
        "addresses cannot be set",
    ),
    (
        f"hosts: ['*.a.com']\n{PORT80}\nresolution: DYNAMIC_DNS\nendpoints: [{{address: 10.0.0.1}}]",
        "spec.endpoints",
        "endpoints cannot be set",
    ),
    # several hosts need HTTP/TLS ports unless NONE
    (
        "hosts: [a.com, b.com]\nports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: DNS",
        "spec.hosts",
        "multiple hosts provided with non-HTTP, non-TLS ports",
    ),
    (f"{A}exportTo: ['*', '.']", "spec.exportTo", "cannot have both public (*) and non-public"),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), INVALID_SE, ids=[f"{p}: {f}" for _, p, f in INVALID_SE]
)
def test_invalid_service_entry(spec: str, path: str, fragment: str) -> None:
    errors = load("ServiceEntry", spec).issues.errors
    assert any(e.path == path and fragment in e.message for e in errors), [
        f"{e.path}: {e.message}" for e in errors
    ]


INVALID_WE = [
    ("address: '*.a.com'", "spec.address", "must not contain a wildcard"),
    ("address: 10.0.0.1\nports: {http: 0}", "spec.ports.http", "0 is less than 1"),
    ("address: 10.0.0.1\nports: {http: '80'}", "spec.ports.http", "must be an integer"),
    ("labels: {app: 1}", "spec.labels.app", "must be a string"),
    ("locality: us//b", "spec.locality", "region[/zone[/subzone]]"),
    ("serviceAccount: Bad_SA", "spec.serviceAccount", "not a valid name"),
    ("weight: true", "spec.weight", "must be an integer"),
    ("lables: {app: a}", "spec.lables", 'did you mean "labels"'),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), INVALID_WE, ids=[f"{p}: {f}" for _, p, f in INVALID_WE]
)
def test_invalid_workload_entry(spec: str, path: str, fragment: str) -> None:
    errors = load("WorkloadEntry", spec).issues.errors
    assert any(e.path == path and fragment in e.message for e in errors), [
        f"{e.path}: {e.message}" for e in errors
    ]


# -- endpoint port precedence: ports[name] > targetPort > number ------------------------------


def test_endpoint_port_map_wins() -> None:
    port = ServicePort(9080, "http", "HTTP", target_port=8080)
    assert Endpoint("127.0.0.1", ports={"http": 9081}).port_for(port) == 9081


def test_target_port_before_service_port() -> None:
    port = ServicePort(9080, "http", "HTTP", target_port=8080)
    assert Endpoint("127.0.0.1", ports={"grpc": 7000}).port_for(port) == 8080


def test_service_port_number_last() -> None:
    assert Endpoint("127.0.0.1").port_for(ServicePort(9080, "http")) == 9080


def test_effective_weight() -> None:
    assert Endpoint(weight=0).effective_weight == 1
    assert Endpoint(weight=7).effective_weight == 7
    assert Endpoint(address="unix:///tmp/s.sock").is_unix
