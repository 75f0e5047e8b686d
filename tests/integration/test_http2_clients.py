"""HTTP/2 clients through the mesh, over intercepted TLS: which protocol ALPN gives them
(``h2`` when offered, as Envoy chooses), request trailers, and extended ``CONNECT``
(RFC 8441 WebSockets), which chaoskit does not serve."""

from __future__ import annotations

import socket
import ssl
import textwrap

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("h2")

SECURE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure}}
spec:
  hosts: [secure.example.test]
  ports: [{{number: 443, name: https, protocol: {protocol}}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{https: {port}}}}}]
"""


def tls_through_connect(mesh, alpn: list[str]) -> ssl.SSLSocket:
    """A TLS connection to ``secure.example.test`` through the proxy's ``CONNECT``, offering
    ``alpn`` in that order."""
    raw = socket.create_connection(("127.0.0.1", mesh.port), timeout=10)
    raw.sendall(
        b"CONNECT secure.example.test:443 HTTP/1.1\r\nHost: secure.example.test:443\r\n\r\n"
    )
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=str(mesh.ca_path))
    ctx.set_alpn_protocols(alpn)
    return ctx.wrap_socket(raw, server_hostname="secure.example.test")


# -- ALPN --------------------------------------------------------------------------------------


def test_httpx_with_http2_on_speaks_http2_although_it_offers_http1_first(mesh, upstreams):
    """httpx offers ``http/1.1, h2``: Envoy (ALPN ``h2, http/1.1``, server preference) and
    chaoskit answer ``h2``; mitmproxy alone keeps the client's order."""
    mesh.apply(SECURE.format(protocol="HTTP", port=upstreams["other"].port))
    ca = ssl.create_default_context(cafile=str(mesh.ca_path))
    with httpx.Client(http2=True, proxy=mesh.url, verify=ca, timeout=10) as client:
        r = client.get("https://secure.example.test/x")
    assert (r.status_code, r.http_version) == (200, "HTTP/2")
    assert r.json()["upstream"] == "other"
    record = mesh.records[-1]
    assert (record.protocol, record.status) == ("HTTP/2", 200)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["http/1.1"], "http/1.1"), (["http/1.1", "h2"], "h2"), (["h2", "http/1.1"], "h2")],
)
def test_alpn_gives_h2_when_offered_and_http1_otherwise(mesh, upstreams, offered, chosen):
    mesh.apply(SECURE.format(protocol="HTTP", port=upstreams["other"].port))
    with tls_through_connect(mesh, offered) as tls:
        assert tls.selected_alpn_protocol() == chosen


def test_a_client_offering_only_http1_gets_http1(mesh, upstreams):
    mesh.apply(SECURE.format(protocol="HTTP", port=upstreams["other"].port))
    ca = ssl.create_default_context(cafile=str(mesh.ca_path))
    with httpx.Client(http2=False, proxy=mesh.url, verify=ca, timeout=10) as client:
        r = client.get("https://secure.example.test/x")
    assert (r.status_code, r.http_version) == (200, "HTTP/1.1")
    assert mesh.records[-1].protocol == "HTTP/1.1"


def test_the_mesh_applies_to_http2_clients_of_httpx(mesh, upstreams):
    """The route's rules still act on the connection ALPN made HTTP/2: a direct response."""
    mesh.apply(
        SECURE.format(protocol="HTTP", port=upstreams["other"].port)
        + textwrap.dedent("""\
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: secure}
        spec:
          hosts: [secure.example.test]
          http:
          - directResponse: {status: 418}
        """)
    )
    ca = ssl.create_default_context(cafile=str(mesh.ca_path))
    with httpx.Client(http2=True, proxy=mesh.url, verify=ca, timeout=10) as client:
        r = client.get("https://secure.example.test/teapot")
    assert (r.status_code, r.http_version) == (418, "HTTP/2")
