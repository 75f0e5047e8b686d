"""Gateway parsing, Istio's validation rules, and the server/VirtualService host intersection."""

from __future__ import annotations

import textwrap

import pytest

from chaoskit.config.gateway import (
    Gateway,
    NamespacedHost,
    Port,
    intersect_host,
    routed_hosts,
    server_accepts,
)
from chaoskit.config.loader import LoadResult, load_text


def load(spec: str, name: str = "gw", namespace: str = "default") -> LoadResult:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    head = (
        f"apiVersion: networking.istio.io/v1\nkind: Gateway\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
    )
    return load_text(f"{head}spec:\n{body}\n")


def only(result: LoadResult) -> Gateway:
    assert not result.issues.errors, [str(i) for i in result.issues]
    (gw,) = result.resources
    assert isinstance(gw, Gateway)
    return gw


def test_bookinfo_gateway() -> None:
    result = load(
        """
        selector:
          istio: ingressgateway
        servers:
        - port:
            number: 8080
            name: http
            protocol: HTTP
          hosts:
          - "*"
    """,
        name="bookinfo-gateway",
    )
    gw = only(result)
    assert not result.issues.warnings
    assert gw.selector == {"istio": "ingressgateway"}
    (server,) = gw.servers
    assert server.port == Port(8080, "HTTP", "http")
    assert server.is_http and server.tls is None
    assert server.hosts == (NamespacedHost("*", "*", "*"),)


def test_egress_gateway_for_cnn() -> None:
    gw = only(
        load(
            """
        selector:
          istio: egressgateway
        servers:
        - port: {number: 80, name: http, protocol: HTTP}
          hosts: [edition.cnn.com]
        - port: {number: 443, name: tls, protocol: TLS}
          hosts: [edition.cnn.com]
          tls: {mode: PASSTHROUGH}
    """,
            name="istio-egressgateway",
            namespace="istio-system",
        )
    )
    http, tls = gw.servers
    assert http.hosts[0].dns_name == "edition.cnn.com" and http.hosts[0].namespace == "*"
    assert not tls.is_http
    assert tls.tls is not None and tls.tls.mode == "PASSTHROUGH"


def test_https_server_and_http_redirect() -> None:
    gw = only(
        load(
            """
        selector: {istio: ingressgateway}
        servers:
        - port: {number: 80, name: http, protocol: HTTP}
          hosts: ["prod/*.example.com", "./admin.example.com"]
          tls: {httpsRedirect: true}
        - port: {number: 443, name: https, protocol: HTTPS}
          hosts: ["*.example.com"]
          tls: {mode: SIMPLE, credentialName: example-cert}
    """,
            namespace="istio-system",
        )
    )
    http, https = gw.servers
    assert http.tls is not None and http.tls.https_redirect
    assert http.hosts == (
        NamespacedHost("prod", "*.example.com", "prod/*.example.com"),
        NamespacedHost("istio-system", "admin.example.com", "./admin.example.com"),
    )
    assert https.tls is not None and https.tls.credential_name == "example-cert"
    assert https.tls.has_certificates


def server(port: str, hosts: str = "[a.example.com]", extra: str = "") -> str:
    return f"servers:\n- port: {port}\n  hosts: {hosts}\n" + (f"  {extra}\n" if extra else "")


HTTP = "{number: 80, name: http, protocol: HTTP}"
HTTPS = "{number: 443, name: https, protocol: HTTPS}"
TCP = "{number: 5432, name: pg, protocol: TCP}"
CRED = "tls: {mode: SIMPLE, credentialName: c}"

INVALID = [
    ("servers: []", "spec.servers", "at least one server"),
    ("selector: {istio: ingressgateway}", "spec.servers", "at least one server"),
    (server(HTTP, "[]"), "spec.servers[0].hosts", "at least one host"),
    (server(HTTP, "[reviews]"), "spec.servers[0].hosts[0]", "short names (non FQDN)"),
    (server(HTTP, "['*foo.com']"), "spec.servers[0].hosts[0]", "partial wildcard"),
    (
        server(HTTP, "['Bad_NS/a.com']"),
        "spec.servers[0].hosts[0]",
        'invalid namespace value "Bad_NS" in gateway',
    ),
    (server(HTTP, "['/a.com']"), "spec.servers[0].hosts[0]", "cannot be empty"),
    (
        server(HTTP) + "- port: {number: 81, name: http, protocol: HTTP}\n  hosts: [b.com]",
        "spec.servers[1].port.name",
        "port names in servers must be unique: duplicate name http",
    ),
    (server(HTTPS), "spec.servers[0].tls", "server must have TLS settings"),
    (server(HTTP, extra=CRED), "spec.servers[0].tls", "plain text HTTP ports"),
    (server(TCP, extra=CRED), "spec.servers[0].tls", "non HTTPS/TLS ports"),
    (
        server(HTTPS, extra="tls: {mode: ISTIO_MUTUAL, serverCertificate: /c.pem}"),
        "spec.servers[0].tls.serverCertificate",
        "ISTIO_MUTUAL TLS cannot have associated",
    ),
    (
        server(
            HTTPS,
            extra="tls: {mode: SIMPLE, credentialName: c, serverCertificate: /c.pem, "
            "privateKey: /k.pem}",
        ),
        "spec.servers[0].tls",
        "only one of credentialName",
    ),
    (
        server(HTTPS, extra="tls: {mode: SIMPLE}"),
        "spec.servers[0].tls",
        "SIMPLE TLS requires a server certificate",
    ),
    (
        server(HTTPS, extra="tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}"),
        "spec.servers[0].tls",
        "MUTUAL TLS requires a client CA bundle",
    ),
    (server(HTTPS, extra="tls: {mode: STRICT}"), "spec.servers[0].tls.mode", "is not one of"),
    # Each tlsCertificates entry and caCrl: istio/istio pkg/config/validation/validation.go
    # validateTLSOptions (validation_test.go TestValidateTlsOptions).
    (
        server(HTTPS, extra="tls: {mode: SIMPLE, tlsCertificates: [{privateKey: /k.pem}]}"),
        "spec.servers[0].tls.tlsCertificates[0]",
        "SIMPLE TLS requires a server certificate",
    ),
    (
        server(HTTPS, extra="tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /c.pem}]}"),
        "spec.servers[0].tls.tlsCertificates[0]",
        "SIMPLE TLS requires a private key",
    ),
    (
        server(HTTPS, extra="tls: {mode: SIMPLE, credentialName: c, caCrl: /crl.pem}"),
        "spec.servers[0].tls.caCrl",
        "CRL is not supported with credentialName",
    ),
    (
        server(
            HTTPS, extra="tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /r}"
        ),
        "spec.servers[0].tls.caCrl",
        "CRL is not supported with SIMPLE TLS",
    ),
    ("servers:\n- hosts: [a.com]", "spec.servers[0]", '"port" is required'),
    (
        server("{number: 80, name: http, protocol: HTTPZ}"),
        "spec.servers[0].port.protocol",
        "unsupported protocol",
    ),
    (server("{number: 80, protocol: HTTP}"), "spec.servers[0].port.name", "port name must be set"),
    (
        server("{number: 80, name: http, protocol: HTTP, targetPort: 8080}"),
        "spec.servers[0].port.targetPort",
        "no impact on Gateways",
    ),
    (
        server("{number: 0, name: http, protocol: HTTP}"),
        "spec.servers[0].port.number",
        "only valid with a unix:// bind",
    ),
    (server(HTTP, extra="bind: localhost"), "spec.servers[0].bind", "must be an IP address"),
    (
        server(HTTP, extra="defaultEndpoints: x"),
        "spec.servers[0].defaultEndpoints",
        'did you mean "defaultEndpoint"',
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), INVALID, ids=[f"{p}: {f}" for _, p, f in INVALID]
)
def test_invalid_gateway(spec: str, path: str, fragment: str) -> None:
    errors = load(spec).issues.errors
    assert any(e.path == path and fragment in e.message for e in errors), [
        f"{e.path}: {e.message}" for e in errors
    ]


def test_gateway_name_must_be_a_label() -> None:
    result = load(server(HTTP), name="my.gateway")
    (err,) = result.issues.errors
    assert err.path == "metadata.name" and "DNS-1123 label" in err.message


def test_https_redirect_on_https_server_warns() -> None:
    tls = "tls: {mode: SIMPLE, credentialName: c, httpsRedirect: true}"
    result = load(server(HTTPS, extra=tls))
    assert not result.issues.errors
    (w,) = result.issues.warnings
    assert w.path == "spec.servers[0].tls"
    assert "httpsRedirect should only be used with http servers" in w.message


def test_passthrough_with_certificates_warns() -> None:
    result = load(
        server(
            "{number: 443, name: tls, protocol: TLS}",
            extra="tls: {mode: PASSTHROUGH, credentialName: c}",
        )
    )
    assert not result.issues.errors
    (w,) = result.issues.warnings
    assert "does not use certificates" in w.message


# -- host intersection (Istio's pickMatchingGatewayHosts, pilot/pkg/networking/core/gateway.go) -


@pytest.mark.parametrize(
    ("server_host", "vs_host", "routed"),
    [
        ("*.example.com", "a.example.com", "a.example.com"),
        ("a.example.com", "*.example.com", "a.example.com"),
        ("*.example.com", "example.com", None),
        ("example.com", "*.example.com", None),
        ("*", "reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local"),
        ("*.example.com", "*.a.example.com", "*.a.example.com"),
        ("A.Example.com", "a.example.COM", "a.example.com"),
        ("a.example.com", "b.example.com", None),
    ],
)
def test_intersect_host(server_host: str, vs_host: str, routed: str | None) -> None:
    assert intersect_host(server_host, vs_host) == routed


def test_server_accepts_namespace_part() -> None:
    any_ns = NamespacedHost("*", "*.example.com", "*.example.com")
    prod = NamespacedHost("prod", "*.example.com", "prod/*.example.com")
    assert server_accepts(any_ns, "dev", "a.example.com")
    assert server_accepts(prod, "prod", "a.example.com")
    assert not server_accepts(prod, "dev", "a.example.com")
    assert not server_accepts(prod, "prod", "example.com")


def test_dot_namespace_means_the_gateways_namespace() -> None:
    gw = only(load(server(HTTP, "['./a.example.com']"), namespace="istio-system"))
    (entry,) = gw.servers[0].hosts
    assert server_accepts(entry, "istio-system", "a.example.com")
    assert not server_accepts(entry, "default", "a.example.com")


def test_routed_hosts() -> None:
    gw = only(load(server(HTTP, "['*.example.com', 'prod/api.other.com']")))
    s = gw.servers[0]
    vs_hosts = ("a.example.com", "api.other.com", "example.com", "*.example.com")
    assert routed_hosts(s, "default", vs_hosts) == ("a.example.com", "*.example.com")
    assert routed_hosts(s, "prod", vs_hosts) == ("a.example.com", "*.example.com", "api.other.com")
