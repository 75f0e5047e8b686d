"""Nothing a client sends makes the proxy forward a request outside its rules.

Before this module, three holes (issue "Trust", items 2, 3 and 7, and the RFC 9112 authority
rule): building the reply (``as_grpc``, the response headers, the record) was outside the core's
error guard, and when it raised mitmproxy forwarded the original request itself to the
absolute-form URL's host — outside REGISTRY_ONLY, unlogged; a ``Host`` like
``127.0.0.1#.x.test`` matched a wildcard ServiceEntry and was pasted into a URL that reached
127.0.0.1; a ``CONNECT`` under REGISTRY_ONLY went to any port of a registry host, and a tunnel
that was not intercepted went wherever DNS said.

A canary listener counts every byte it is sent: it is what a bypass would reach, and it must
stay silent. The mesh is REGISTRY_ONLY, so nothing here can make the proxy dial anything else.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import textwrap
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaoskit.proxy.api import Proxy
from chaoskit.testing import Upstream
from tests.builders import service_entry
from tests.reliability.conftest import session, wait_for

REGISTRY_ONLY = textwrap.dedent("""\
    apiVersion: chaoskit.dev/v1alpha1
    kind: MeshConfig
    metadata: {name: mesh}
    spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
    """)


class Canary:
    """A TCP listener that accepts anything and counts what arrives."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = 0
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                self.received += len(data)

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(2)


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


def mesh_yaml(web: Upstream, endpoint: Canary) -> str:
    """``web`` is routed (rules that copy request bytes into replies); ``*.x.test`` is Istio's
    wildcard-egress pattern, ``secure.test`` a TLS-only registry host, ``gw`` a Gateway."""
    return (
        service_entry("web", web.port)
        + "---\n"
        + textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: wildcard}}
        spec:
          hosts: ["*.x.test"]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: NONE
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: tls-only}}
        spec:
          hosts: [secure.test]
          ports: [{{number: 443, name: tls, protocol: TLS}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{tls: {endpoint.port}}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: web}}
        spec:
          hosts: [web]
          http:
          - match: [{{headers: {{x-case: {{exact: redirect}}}}}}]
            redirect: {{uri: /moved}}
          - match: [{{headers: {{x-case: {{exact: direct}}}}}}]
            directResponse: {{status: 503, body: {{string: "überlastet\\nx-injected: 1"}}}}
          - route: [{{destination: {{host: web}}}}]
            headers:
              request: {{set: {{x-copied: "%REQ(x-foo)%"}}}}
              response: {{set: {{x-echo: "%REQ(x-foo)%", x-agent: "%REQ(user-agent)%"}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {{name: gw}}
        spec:
          selector: {{istio: ingressgateway}}
          servers:
          - port: {{number: 8080, name: http, protocol: HTTP}}
            hosts: ["*"]
        ---
        """)
        + REGISTRY_ONLY
    )


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Canary]:
    """secure.test's only endpoint: a tunnel to secure.test must arrive here."""
    c = Canary()
    yield c
    c.close()


@pytest.fixture(scope="module")
def proxy(canary, endpoint, tmp_path_factory) -> Iterator[Proxy]:
    with (
        Upstream("web") as web,
        Proxy(
            mesh_yaml(web, endpoint), seed=5, state_dir=tmp_path_factory.mktemp("st"),
            gateway_ports={8080: 0},
        ) as p,
    ):  # fmt: skip
        p.web = web  # type: ignore[attr-defined]
        p.gw_port = next(b for b, port in p.core.gateway_ports.items() if port == 8080)  # type: ignore[attr-defined]
        yield p


@pytest.fixture
def mesh(proxy, canary) -> Iterator[Proxy]:
    proxy.reset()
    proxy.web.clear()
    before = canary.received, canary.connections
    yield proxy
    assert (canary.received, canary.connections) == before, "a request reached the canary"


def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection; everything the proxy answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)  # every request says `connection: close`: the proxy ends the exchange
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := s.recv(65536):
                out += chunk
    return out


def status_of(response: bytes) -> int:
    """The status answered, or 0 when the proxy closed the connection without one (what
    mitmproxy's own parser does with some broken heads: not a forward either)."""
    if not response:
        return 0
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12])


# -- the reply is always chaoskit's -----------------------------------------------------------

HOSTILE = st.binary(min_size=1, max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(
    max_examples=60, derandomize=True, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(
    value=HOSTILE,
    header=st.sampled_from([b"x-foo", b"user-agent", b"host"]),
    case=st.sampled_from([b"route", b"redirect", b"direct"]),
    grpc=st.booleans(),
)
def test_hostile_bytes_in_copied_headers_never_escape_the_core(mesh, canary, value, header, case,
                                                                grpc):  # fmt: skip
    # The absolute-form URL names the canary; the Host header names the routed service. Before,
    # the Host won (routing to `web` with rules copying the bytes), the reply could not be
    # built, and mitmproxy forwarded the request to the canary.
    headers = {b"host": b"web", b"x-case": case, b"x-foo": b"plain"}
    headers[header] = value
    if grpc:
        headers[b"content-type"] = b"application/grpc"
    head = b"".join(k + b": " + v + b"\r\n" for k, v in headers.items())
    target = f"http://127.0.0.1:{canary.port}/p".encode()
    response = raw(
        mesh.port, b"GET " + target + b" HTTP/1.1\r\n" + head + b"connection: close\r\n\r\n"
    )
    status = status_of(response)
    if grpc and status == 200:  # a local reply to a gRPC client: HTTP 200 + grpc-status
        assert b"grpc-status: 14" in response.lower() or b"grpc-status: 13" in response.lower()
    else:
        assert status in (0, 400, 431, 502), response[:300]
    assert status == 0 or b"server: envoy" in response.lower()
    # and through the name, with the same bytes: routed, answered, never a traceback
    response = raw(
        mesh.port, b"GET http://web/p HTTP/1.1\r\n" + head + b"connection: close\r\n\r\n"
    )
    assert status_of(response) in (0, 200, 301, 400, 431, 503), response[:300]


def test_an_absolute_form_url_wins_over_the_host_header(mesh, canary):
    # RFC 9112 §3.2.2: a proxy ignores Host when the request target is absolute. The canary
    # is not in the registry: REGISTRY_ONLY refuses it, whatever Host says.
    response = raw(
        mesh.port,
        f"GET http://127.0.0.1:{canary.port}/ HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n".encode(),
    )
    assert status_of(response) == 502
    (record,) = mesh.records
    assert record.authority == f"127.0.0.1:{canary.port}" and record.route_name == "block_all"
    assert not mesh.web.requests


@pytest.mark.parametrize(
    "host",
    [b"127.0.0.1#.x.test", b"localhost#.x.test", b"127.0.0.1/secret?.x.test",
     b"user@127.0.0.1.x.test", b"127.0.0.1%23.x.test", b"\xff.x.test", b"a.x.test:80#"],
)  # fmt: skip
def test_an_invalid_authority_is_answered_400_and_never_becomes_a_destination(mesh, host):
    # On a Gateway listener Host is the authority: Envoy's 400 for an invalid one, flag DPE.
    response = raw(
        mesh.gw_port, b"GET / HTTP/1.1\r\nhost: " + host + b"\r\nconnection: close\r\n\r\n"
    )
    assert status_of(response) == 400, response[:200]
    assert b"server: istio-envoy" in response.lower()
    (record,) = mesh.records
    assert (record.details, record.flags) == ("http.invalid_authority", ("DPE",))
    # On the forward proxy: mitmproxy itself refuses such a Host in origin-form (400) ...
    response = raw(mesh.port, b"GET / HTTP/1.1\r\nhost: " + host + b"\r\nconnection: close\r\n\r\n")
    assert status_of(response) in (0, 400), response[:200]
    # ... and with an absolute-form URL the URL is the destination, never the Host header:
    # a.x.test matches the wildcard ServiceEntry and goes where *it* resolves (nowhere here).
    response = raw(
        mesh.port,
        b"GET http://a.x.test/ HTTP/1.1\r\nhost: " + host + b"\r\nconnection: close\r\n\r\n",
    )
    assert status_of(response) == 503, response[:200]
    last = mesh.records[-1]
    assert last.authority == "a.x.test" and last.upstream_host == "a.x.test:80"


def test_the_proxy_sets_x_forwarded_proto_and_drops_headers_named_in_connection(mesh):
    with session(mesh.url) as s:
        r = s.get(
            "http://web/h",
            headers={"x-forwarded-proto": "https", "connection": "keep-alive, x-secret-hop",
                     "x-secret-hop": "1", "x-kept": "2"},
            timeout=10,
        )  # fmt: skip
    assert r.status_code == 200
    (received,) = mesh.web.requests
    assert received.headers["x-forwarded-proto"] == "http"  # replaced, not appended
    assert "x-secret-hop" not in received.headers and received.headers["x-kept"] == "2"
    assert healthy_web(mesh)


def healthy_web(mesh: Proxy) -> bool:
    with session(mesh.url) as s:
        return s.get("http://web/ok", timeout=10).status_code == 200


# -- tunnels ----------------------------------------------------------------------------------


def connect(port: int, authority: str) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def test_connect_to_an_undeclared_port_of_a_registry_host_is_refused(mesh, canary):
    s, head = connect(mesh.port, f"web:{canary.port}")
    s.close()
    assert head.startswith(b"HTTP/1.1 502"), head
    s, head = connect(mesh.port, "web:80")  # the declared port is fine
    s.close()
    assert head.startswith(b"HTTP/1.1 200"), head


def test_a_tunnel_that_is_not_intercepted_goes_to_the_registry_endpoint(mesh, endpoint):
    # The SNI names a host outside the registry, so the TLS is not intercepted: the tunnel is
    # passed through — to secure.test's endpoint, not to whatever DNS says secure.test is.
    s, head = connect(mesh.port, "secure.test:443")
    assert head.startswith(b"HTTP/1.1 200"), head
    before = endpoint.received
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with context.wrap_socket(
        s, server_hostname="outside.example", do_handshake_on_connect=False
    ) as tls:
        tls.settimeout(1)
        with contextlib.suppress(TimeoutError, OSError):
            tls.do_handshake()  # the endpoint never answers: only its arrival matters
        assert wait_for(lambda: endpoint.received > before), "the ClientHello went elsewhere"
