"""HTTP/2 clients through the mesh, over intercepted TLS: which protocol ALPN gives them
(``h2`` when offered, as Envoy chooses), request trailers, and extended ``CONNECT``
(RFC 8441 WebSockets), which chaoskit does not serve."""

from __future__ import annotations

import contextlib
import gc
import json
import ssl
import textwrap
from collections.abc import Iterator

import pytest

from chaoskit.testing.http2_upstream import Http2Upstream
from tests.integration.h2_client import h2_exchange, tls_through_connect
from tests.reliability.conftest import wait_for

httpx = pytest.importorskip("httpx")
h2_events = pytest.importorskip("h2.events")

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


# -- request trailers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def h2_upstream() -> Iterator[Http2Upstream]:
    with Http2Upstream("h2") as up:
        yield up


def post(path: str) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "https"), (":authority", "secure.example.test"),
            (":path", path), ("content-type", "text/plain")]  # fmt: skip


def answer(seen: list[tuple[float, object]]) -> tuple[str, bytes, object]:
    """The ``:status``, the body and the last event of an h2 exchange."""
    status = next(
        dict(e.headers)[b":status"].decode()
        for _, e in seen
        if isinstance(e, h2_events.ResponseReceived)
    )
    body = b"".join(e.data for _, e in seen if isinstance(e, h2_events.DataReceived))
    return status, body, seen[-1][1]


@pytest.mark.parametrize("body", [b"hello", b""], ids=["with-body", "no-body"])
def test_request_trailers_reach_an_http2_upstream(mesh, h2_upstream, body):
    """Envoy's router forwards a request's trailers to an HTTP/2 upstream; so does chaoskit
    (the endpoint speaks h2c: the port's protocol is HTTP2)."""
    h2_upstream.clear()
    mesh.apply(SECURE.format(protocol="HTTP2", port=h2_upstream.port))
    trailers = [("x-checksum", "abc123"), ("x-more", "yes")]
    status, _, last = answer(h2_exchange(tls_through_connect(mesh), post("/up"), body, trailers))
    assert status == "200" and isinstance(last, h2_events.StreamEnded)
    (received,) = h2_upstream.requests
    assert (received.method, received.path, received.body) == ("POST", "/up", body)
    assert h2_upstream.request_trailers == [{"x-checksum": "abc123", "x-more": "yes"}]
    record = mesh.records[-1]
    assert (record.protocol, record.status, record.flags) == ("HTTP/2", 200, ())


def test_request_trailers_are_dropped_toward_an_http1_upstream(mesh, upstreams):
    """Envoy's HTTP/1 codec drops request trailers (``enable_trailers`` is off in Istio); the
    request itself goes through, body and all."""
    mesh.apply(SECURE.format(protocol="HTTP", port=upstreams["other"].port))
    trailers = [("x-checksum", "abc123")]
    seen = h2_exchange(tls_through_connect(mesh), post("/up"), b"hello", trailers)
    status, body, last = answer(seen)
    assert status == "200" and isinstance(last, h2_events.StreamEnded)
    assert json.loads(body)["upstream"] == "other"
    (received,) = upstreams["other"].requests
    assert (received.method, received.body) == ("POST", b"hello")
    assert "x-checksum" not in {k.lower() for k in received.headers}


# -- HTTP/2 WebSockets ---------------------------------------------------------------------------


def test_an_http2_websocket_is_refused_as_istio_refuses_it_and_recorded(mesh, upstreams):
    """Extended CONNECT (RFC 8441) without SETTINGS_ENABLE_CONNECT_PROTOCOL, which neither
    Istio's Envoy (allow_connect off) nor chaoskit advertises: the connection is closed with
    GOAWAY PROTOCOL_ERROR (Envoy's default for an invalid header), nothing reaches the
    upstream, the proxy goes on serving, and the record says what happened."""
    mesh.apply(SECURE.format(protocol="HTTP", port=upstreams["other"].port))
    headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
               (":authority", "secure.example.test"), (":path", "/chat"),
               ("sec-websocket-version", "13")]  # fmt: skip
    tls = tls_through_connect(mesh)
    settings = None
    for _, event in h2_exchange(tls, headers, validate=False):
        if isinstance(event, h2_events.RemoteSettingsChanged):
            settings = event.changed_settings
        last = event
    assert isinstance(last, h2_events.ConnectionTerminated)
    assert last.error_code == 1  # PROTOCOL_ERROR
    enable_connect = 8  # SETTINGS_ENABLE_CONNECT_PROTOCOL: not offered
    assert settings is not None and (
        enable_connect not in settings or settings[enable_connect].new_value == 0
    )
    assert upstreams["other"].requests == []
    (record,) = mesh.records
    assert (record.method, record.path, record.protocol) == ("CONNECT", "/chat", "HTTP/2")
    assert (record.status, record.flags, record.details) == (
        0, ("DPE",), "http2.invalid.header.field",
    )  # fmt: skip
    assert any("extended CONNECT (:protocol websocket" in n for n in record.notes)
    status, _, _ = answer(h2_exchange(tls_through_connect(mesh), post("/after"), b"x"))
    assert status == "200"


# -- a client that stops reading ----------------------------------------------------------------


def queued_for_clients() -> int:
    """The DATA mitmproxy's HTTP/2 connections to clients hold because a window is shut
    (``BufferedH2Connection.stream_buffers``; the proxy runs in this process)."""
    from mitmproxy.proxy.layers.http._http_h2 import BufferedH2Connection

    return sum(
        len(item.data)
        for conn in gc.get_objects()
        if isinstance(conn, BufferedH2Connection)
        for queue in conn.stream_buffers.values()
        for item in queue
    )


def test_a_client_that_keeps_its_window_shut_holds_the_upstream_back(mesh, h2_upstream):
    """mitmproxy queues what an HTTP/2 client's window does not admit, without limit: a client
    that stops reading a streamed download would have the proxy hold all of it. The relay
    stops at Envoy's buffer limit (plus the piece in hand, at most one upstream window), the
    upstream's own window then holds the endpoint back; once the client reads again, every
    byte arrives."""
    import h2.config
    import h2.connection

    from chaoskit.proxy.http2_connection import STREAM_WINDOW
    from chaoskit.proxy.response_stream import CLIENT_STREAM_BUFFER
    from tests.integration.h2_client import get

    mesh.apply(SECURE.format(protocol="HTTP2", port=h2_upstream.port))
    size = 8 * 1024 * 1024
    tls = tls_through_connect(mesh)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, get(f"/bytes/{size}"), end_stream=True)
    tls.sendall(conn.data_to_send())
    got, ended = 0, False

    def read(acknowledge: bool) -> None:
        nonlocal got, ended
        for event in conn.receive_data(tls.recv(65536)):
            if isinstance(event, h2_events.DataReceived):
                got += len(event.data)
                if acknowledge:
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
            ended = ended or isinstance(event, h2_events.StreamEnded)
        tls.sendall(conn.data_to_send())

    with tls:
        tls.settimeout(0.05)
        for _ in range(20):  # a second with the default 64 KiB window, never opened
            with contextlib.suppress(TimeoutError):
                read(acknowledge=False)
        assert got <= 65535
        assert 0 < queued_for_clients() <= CLIENT_STREAM_BUFFER + STREAM_WINDOW
        conn.acknowledge_received_data(got, 1)  # what came while the window was kept shut
        tls.sendall(conn.data_to_send())
        tls.settimeout(10)
        while not ended:
            read(acknowledge=True)
    assert got == size
    assert wait_for(lambda: mesh.records and mesh.records[-1].path == f"/bytes/{size}")
    assert mesh.records[-1].flags == ()
