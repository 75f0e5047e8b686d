"""Sidecar parsing, the outboundTrafficPolicy gotcha, Istio's rules, and egress host import."""

from __future__ import annotations

import textwrap

import pytest

from chaoskit.config.gateway import NamespacedHost
from chaoskit.config.loader import LoadResult, load_text
from chaoskit.config.mesh_config import ALLOW_ANY, REGISTRY_ONLY
from chaoskit.config.sidecar import Sidecar, SidecarPort, imports_host


def load(spec: str, namespace: str = "default") -> LoadResult:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    head = (
        f"apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
        f"metadata:\n  name: default\n  namespace: {namespace}\n"
    )
    return load_text(f"{head}spec:\n{body}\n")


def only(result: LoadResult) -> Sidecar:
    assert not result.issues.errors, [str(i) for i in result.issues]
    (sc,) = result.resources
    assert isinstance(sc, Sidecar)
    return sc


def test_registry_only() -> None:
    result = load("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY")
    sc = only(result)
    assert not result.issues.warnings
    assert sc.outbound_traffic_policy is not None
    assert sc.outbound_traffic_policy.mode == REGISTRY_ONLY
    assert sc.workload_selector is None and sc.egress == ()


def test_empty_block_means_registry_only_and_warns() -> None:
    result = load("outboundTrafficPolicy: {}", namespace="istio-system")
    sc = only(result)
    assert sc.outbound_traffic_policy is not None
    assert sc.outbound_traffic_policy.mode == REGISTRY_ONLY
    (w,) = result.issues.warnings
    assert w.path == "spec.outboundTrafficPolicy" and "REGISTRY_ONLY" in w.message


def test_absent_block_leaves_the_mesh_default() -> None:
    sc = only(load("egress:\n- hosts: ['./*', 'istio-system/*']"))
    assert sc.outbound_traffic_policy is None
    (listener,) = sc.egress
    assert listener.port is None
    assert listener.hosts == (
        NamespacedHost("default", "*", "./*"),
        NamespacedHost("istio-system", "*", "istio-system/*"),
    )


def test_istio_docs_ratings_example() -> None:
    result = load(
        """
        workloadSelector:
          labels:
            app: ratings
        egress:
        - port:
            number: 9080
            protocol: HTTP
            name: egresshttp
          hosts:
          - "prod-us1/*"
        - hosts:
          - "istio-system/*"
        ingress:
        - port: {number: 9080, protocol: HTTP, name: somename}
          defaultEndpoint: unix:///var/run/someuds.sock
        outboundTrafficPolicy:
          mode: ALLOW_ANY
          egressProxy:
            host: egress-proxy.example.com
            port: {number: 3128}
    """,
        namespace="prod-us1",
    )
    sc = only(result)
    assert not result.issues.warnings
    assert sc.workload_selector == {"app": "ratings"}
    assert sc.egress[0].port == SidecarPort(9080, "HTTP", "egresshttp")
    assert sc.ingress[0].default_endpoint == "unix:///var/run/someuds.sock"
    policy = sc.outbound_traffic_policy
    assert policy is not None and policy.mode == ALLOW_ANY
    assert policy.egress_proxy is not None and policy.egress_proxy.port == 3128


H = "hosts: ['*/*']"
P80 = f"port: {{number: 80}}\n  {H}"
I80 = "ingress:\n- port: {number: 80, protocol: HTTP, name: http}"
I443 = "ingress:\n- port: {number: 443, protocol: HTTPS, name: https}"
DE = "spec.ingress[0].defaultEndpoint"
T = "spec.ingress[0].tls"
CERT = "mode: SIMPLE, serverCertificate: /c, privateKey: /k"

INVALID = [
    ("{}", "spec", "empty Sidecar"),
    (f"egress:\n- {H}\n- {P80}", "spec.egress[0]", "should be the last listener"),
    (
        "egress:\n- hosts: [foo.example.com]",
        "spec.egress[0].hosts[0]",
        "must be of form namespace/dnsName",
    ),
    (
        "egress:\n- hosts: ['Bad/foo.com']",
        "spec.egress[0].hosts[0]",
        'invalid namespace value "Bad" in sidecar',
    ),
    ("egress:\n- hosts: ['./reviews']", "spec.egress[0].hosts[0]", "short names (non FQDN)"),
    ("egress:\n- hosts: ['*/foo*.com']", "spec.egress[0].hosts[0]", "not a valid DNS name"),
    ("egress:\n- hosts: ['*/*foo.com']", "spec.egress[0].hosts[0]", "partial wildcard"),
    ("egress:\n- hosts: ['/foo.com']", "spec.egress[0].hosts[0]", "cannot be empty"),
    ("egress:\n- port: {number: 80}\n  hosts: []", "spec.egress[0].hosts", "at least one host"),
    (f"egress:\n- {P80}\n- {P80}", "spec.egress[1].port", "on IP bound listeners must be unique"),
    (
        f"egress:\n- port: {{number: 0}}\n  {H}",
        "spec.egress[0].port.number",
        "unix domain socket bind address",
    ),
    (
        f"egress:\n- port: {{number: 80, targetPort: 8080}}\n  {H}",
        "spec.egress[0].port.targetPort",
        "no impact on Sidecars",
    ),
    (
        f"egress:\n- port: {{number: 80, protocol: UDP}}\n  {H}",
        "spec.egress[0].port.protocol",
        "UDP is not supported",
    ),
    (f"egress:\n- captureMode: TPROXY\n  {H}", "spec.egress[0].captureMode", "is not one of"),
    (
        f"egress:\n- bind: localhost\n  port: {{number: 80}}\n  {H}",
        "spec.egress[0].bind",
        "must be an IP address",
    ),
    (
        "ingress:\n- defaultEndpoint: 127.0.0.1:8080",
        "spec.ingress[0].port",
        "port is required for ingress listeners",
    ),
    (
        "ingress:\n- port: {number: 80}\n- port: {number: 80}",
        "spec.ingress[1].port",
        "ports on IP bound listeners must be unique",
    ),
    (
        "outboundTrafficPolicy: {mode: ALLOW_ALL}",
        "spec.outboundTrafficPolicy.mode",
        'did you mean "ALLOW_ANY"',
    ),
    (
        "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n  egressProxy: {host: p.example.com, "
        "port: {number: 3128}}",
        "spec.outboundTrafficPolicy.egressProxy",
        "only with ALLOW_ANY",
    ),
    (
        "outboundTrafficPolicy:\n  mode: ALLOW_ANY\n  egressProxy: {host: p.example.com}",
        "spec.outboundTrafficPolicy.egressProxy",
        "port must be set",
    ),
    (
        f"workloadSelector: {{labels: {{version: 1}}}}\negress:\n- {H}",
        "spec.workloadSelector.labels.version",
        "must be a string",
    ),
    (f"egres:\n- {H}", "spec.egres", 'did you mean "egress"'),
    # Ingress listeners, emptiness and connection pools: istio/istio
    # pkg/config/validation/validation.go ValidateSidecar (+ validateTLSOptions,
    # validateConnectionPool), cases from validation_test.go TestValidateSidecar.
    ("egress: []", "spec", "empty Sidecar"),
    ("ingress: []\negress: []", "spec", "empty Sidecar"),
    ("inboundConnectionPool: {}", "spec.inboundConnectionPool", "at least one field"),
    (f"{I80}\n  connectionPool: {{}}", "spec.ingress[0].connectionPool", "at least one field"),
    (f"{I80}\n  defaultEndpoint: 10.0.0.1:8080", DE, "must be of form 127.0.0.1:<port>"),
    (f"{I80}\n  defaultEndpoint: 'localhost:8080'", DE, "must be of form 127.0.0.1:<port>"),
    (f"{I80}\n  defaultEndpoint: 127.0.0.1", DE, "missing port in address"),
    (f"{I80}\n  defaultEndpoint: '127.0.0.1:http'", DE, "is not a number"),
    (f"{I80}\n  defaultEndpoint: 127.0.0.1:0", DE, "must be in the range 1..65535"),
    (f"{I80}\n  defaultEndpoint: 127.0.0.1:65536", DE, "must be in the range 1..65535"),
    (f"{I80}\n  defaultEndpoint: 'unix://foo.sock'", DE, "not an absolute path to a file"),
    (f"{I80}\n  defaultEndpoint: 'unix:///var/run/'", DE, "not an absolute path to a file"),
    (f"{I80}\n  defaultEndpoint: 'unix://'", DE, "unix address must not be empty"),
    (f"{I443}\n  tls: {{mode: ISTIO_MUTUAL}}", T + ".mode", "cannot set mode to ISTIO_MUTUAL"),
    (f"{I443}\n  tls: {{mode: AUTO_PASSTHROUGH}}", T + ".mode", "cannot set mode to AUTO_PASS"),
    (f"{I443}\n  tls: {{{CERT}, subjectAltNames: [a]}}", T + ".subjectAltNames", "not supported"),
    (f"{I443}\n  tls: {{{CERT}, httpsRedirect: true}}", T + ".httpsRedirect", "not supported"),
    (f"{I443}\n  tls: {{mode: SIMPLE, credentialName: c}}", T + ".credentialName", "not currently"),
    (f"{I443}\n  tls: {{mode: SIMPLE, credentialNames: [c]}}", T + ".credentialNames", "not curr"),
    (
        f"{I443}\n  tls: {{mode: SIMPLE, tlsCertificates: [{{serverCertificate: /c, privateKey: /k}}]}}",
        T + ".tlsCertificates",
        "not currently supported",
    ),
    (f"{I443}\n  tls: {{mode: SIMPLE, privateKey: /k}}", T, "requires a server certificate"),
    (f"{I443}\n  tls: {{mode: MUTUAL, {CERT[14:]}}}", T, "requires a client CA bundle"),
    (f"{I80}\n  tls: {{{CERT}}}", T, "cannot have TLS settings for non HTTPS/TLS ports"),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), INVALID, ids=[f"{p}: {f}" for _, p, f in INVALID]
)
def test_invalid_sidecar(spec: str, path: str, fragment: str) -> None:
    errors = load(spec).issues.errors
    assert any(e.path == path and fragment in e.message for e in errors), [
        f"{e.path}: {e.message}" for e in errors
    ]


#: Accepted by Istio's ValidateSidecar (validation.go), so accepted here.
VALID_INGRESS = [
    f"{I80}\n  defaultEndpoint: 127.0.0.1:8080",
    f"{I80}\n  defaultEndpoint: 0.0.0.0:8080",
    f"{I80}\n  defaultEndpoint: '[::1]:8080'",
    f"{I80}\n  defaultEndpoint: '[::]:8080'",
    f"{I80}\n  defaultEndpoint: ':8080'",
    f"{I80}\n  defaultEndpoint: 'unix:///var/run/app.sock'",
    f"{I80}\n  defaultEndpoint: 'unix://@abstract'",
    f"{I443}\n  tls: {{{CERT}}}",
    f"{I443}\n  tls: {{mode: PASSTHROUGH}}",
    f"{I80}\n  connectionPool: {{tcp: {{maxConnections: 10}}}}",
    "inboundConnectionPool: {http: {http1MaxPendingRequests: 5}}",
]


@pytest.mark.parametrize("spec", VALID_INGRESS)
def test_valid_ingress(spec: str) -> None:
    only(load(spec))


WARNINGS = [
    (
        "egress:\n- hosts: ['default/a.example.com', './a.example.com']",
        "spec.egress[0].hosts[1]",
        "duplicated egress host: ./a.example.com",
    ),
    (
        "egress:\n- hosts: ['prod/a.example.com', 'prod/*']",
        "spec.egress[0].hosts[1]",
        "duplicated egress host: prod/*",
    ),
    (
        "egress:\n- hosts: ['*/*', 'prod/a.example.com']",
        "spec.egress[0].hosts",
        "`*/*` host selects all resources",
    ),
    (
        f"workloadSelector: {{labels: {{}}}}\negress:\n- {H}",
        "spec.workloadSelector",
        "applies to every workload",
    ),
    (
        "ingress:\n- port: {number: 9000, protocol: TCP, name: tcp}\n"
        "  connectionPool: {http: {http1MaxPendingRequests: 5}}",
        "spec.ingress[0].connectionPool.http",
        "only TCP settings will apply",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), WARNINGS, ids=[f"{p}: {f}" for _, p, f in WARNINGS]
)
def test_sidecar_warnings(spec: str, path: str, fragment: str) -> None:
    issues = load(spec).issues
    assert not issues.errors, [str(i) for i in issues]
    assert any(w.path == path and fragment in w.message for w in issues.warnings), [
        f"{w.path}: {w.message}" for w in issues.warnings
    ]


# -- egress host import (istio/api sidecar.proto, istio/istio pilot/pkg/model/sidecar.go) ------


def sidecar(spec: str, namespace: str = "default") -> Sidecar:
    (sc,) = load(spec, namespace).resources
    assert isinstance(sc, Sidecar)
    return sc


def test_no_egress_imports_everything() -> None:
    sc = sidecar("outboundTrafficPolicy: {mode: REGISTRY_ONLY}")
    assert imports_host(sc, "anything.example.com", "elsewhere")


def test_dot_is_the_sidecars_namespace() -> None:
    sc = sidecar("egress:\n- hosts: ['./*']", namespace="shop")
    assert imports_host(sc, "cart.shop.svc.cluster.local", "shop")
    assert not imports_host(sc, "reviews.default.svc.cluster.local", "default")


def test_any_namespace_specific_host() -> None:
    sc = sidecar("egress:\n- hosts: ['*/httpbin.org', 'prod/*.example.com']")
    assert imports_host(sc, "httpbin.org", "default")
    assert imports_host(sc, "HTTPBIN.org", "istio-system")
    assert not imports_host(sc, "postman-echo.com", "default")
    assert imports_host(sc, "a.example.com", "prod")
    assert not imports_host(sc, "a.example.com", "dev")
    assert not imports_host(sc, "example.com", "prod")
    assert imports_host(sc, "*.example.com", "prod")  # a wildcard service overlaps


def test_tilde_excludes() -> None:
    sc = sidecar("egress:\n- hosts: ['*/*', '~prod/*']")
    assert imports_host(sc, "a.example.com", "dev")
    assert not imports_host(sc, "a.example.com", "prod")
    nothing = sidecar("egress:\n- hosts: ['~/*']")
    assert not imports_host(nothing, "a.example.com", "default")


def test_port_listener_takes_precedence_over_catch_all() -> None:
    sc = sidecar("""
        egress:
        - port: {number: 9080, protocol: HTTP, name: http}
          hosts: ["prod/*"]
        - hosts: ["istio-system/*"]
    """)
    assert imports_host(sc, "ratings.prod.svc.cluster.local", "prod", port=9080)
    assert not imports_host(sc, "ratings.prod.svc.cluster.local", "prod", port=80)
    assert imports_host(sc, "gw.istio-system.svc.cluster.local", "istio-system", port=80)
    assert not imports_host(sc, "gw.istio-system.svc.cluster.local", "istio-system", port=9080)
    assert imports_host(sc, "ratings.prod.svc.cluster.local", "prod")
    assert imports_host(sc, "gw.istio-system.svc.cluster.local", "istio-system")
    assert sc.egress_listener_for(9080) is sc.egress[0]
    assert sc.egress_listener_for(1234) is sc.egress[1]
