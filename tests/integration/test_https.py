"""HTTPS through the proxy: registry hosts are intercepted with chaoskit's CA (so rules apply),
everything else is tunnelled untouched."""

from __future__ import annotations

import socket
import ssl
import textwrap
import threading
from collections.abc import Iterator

import pytest
import requests
from cryptography import x509

from chaoskit.testing.certs import self_signed


@pytest.fixture
def tls_server(tmp_path) -> Iterator[int]:
    """A TLS server (its own self-signed certificate) answering one fixed HTTP response."""
    cert, key = self_signed(tmp_path, "outside-the-mesh")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(65536)
                    body = b"untouched"
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                        % (len(body), body)
                    )
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def test_registry_host_is_intercepted_and_routed(mesh, upstreams):
    mesh.apply(
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: secure}}
        spec:
          hosts: [secure.example.test]
          ports: [{{number: 443, name: https, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{https: {upstreams["other"].port}}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: secure}}
        spec:
          hosts: [secure.example.test]
          http:
          - match: [{{uri: {{prefix: /teapot}}}}]
            directResponse: {{status: 418}}
          - route: [{{destination: {{host: secure.example.test}}}}]
        """)
    )
    assert mesh.ca_path.exists()
    proxies = {"https": mesh.url}
    r = requests.get(
        "https://secure.example.test/x", proxies=proxies, verify=str(mesh.ca_path), timeout=10
    )
    assert r.status_code == 200 and r.json()["upstream"] == "other"
    r = requests.get(
        "https://secure.example.test/teapot", proxies=proxies, verify=str(mesh.ca_path), timeout=10
    )
    assert r.status_code == 418
    assert mesh.records[-1].scheme == "https"


def test_other_https_is_tunnelled_untouched(mesh, tls_server):
    with socket.create_connection(("127.0.0.1", mesh.port), timeout=10) as raw:
        raw.sendall(
            f"CONNECT 127.0.0.1:{tls_server} HTTP/1.1\r\nHost: 127.0.0.1:{tls_server}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname="outside.example.test") as tls:
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            assert cert.subject.rfc4514_string() == "CN=outside-the-mesh"  # not chaoskit's CA
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert tls.recv(4096).endswith(b"untouched")
    assert mesh.records == []  # the proxy never saw the request inside the tunnel


def test_registry_only_refuses_tunnels_to_unknown_hosts(mesh, tls_server):
    mesh.apply(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default}\n"
        "spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n"
    )
    with socket.create_connection(("127.0.0.1", mesh.port), timeout=10) as raw:
        raw.sendall(
            f"CONNECT 127.0.0.1:{tls_server} HTTP/1.1\r\nHost: 127.0.0.1:{tls_server}\r\n\r\n".encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 502")


def test_tls_is_originated_to_an_endpoint_when_the_destination_rule_says_simple(mesh, tls_server):
    # Istio's egress TLS origination: the app speaks plain HTTP, the sidecar speaks TLS upstream
    # (the endpoint's self-signed certificate is not verified, as before; see docs/proxy.md)
    mesh.apply(
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: origin}}
        spec:
          hosts: [origin.example.test]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {tls_server}}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: origin}}
        spec:
          host: origin.example.test
          trafficPolicy: {{tls: {{mode: SIMPLE}}}}
        """)
    )
    for _ in range(2):  # the server closes each connection: a new handshake each time
        r = requests.get("http://origin.example.test/x", proxies={"http": mesh.url}, timeout=10)
        assert (r.status_code, r.text) == (200, "untouched")
    assert [a.outcome for a in mesh.records[-1].attempts] == ["response"]
