"""Streamed responses through the real proxy: bodies reach the client as they arrive, under
Envoy's rules for a response whose headers already went downstream (issue #14 item 1)."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
import requests

from tests.integration.h2_client import get, h2_exchange, tls_through_connect
from tests.integration.test_disconnects import wait_for
from tests.integration.test_resilience import vs


def _timed_lines(resp: requests.Response) -> list[tuple[float, str]]:
    t0 = time.monotonic()
    return [(time.monotonic() - t0, line) for line in resp.iter_lines(decode_unicode=True) if line]


def test_a_chunked_body_reaches_the_client_piece_by_piece(mesh, client):
    t0 = time.monotonic()
    with client.get("http://ratings:9080/stream/4/300", stream=True, timeout=10) as r:
        headers_after = time.monotonic() - t0
        assert r.status_code == 200
        assert r.headers["transfer-encoding"] == "chunked"
        lines = _timed_lines(r)
    assert [line for _, line in lines] == [f"piece {i}" for i in range(4)]
    assert headers_after < 0.25  # the head did not wait for the body (0.9 s of it)
    assert lines[0][0] < 0.25 and lines[-1][0] >= 0.8
    record = mesh.records[-1]
    assert (record.status, record.flags, record.details) == (200, (), "via_upstream")
    assert record.bytes_sent == sum(len(f"piece {i}\n") for i in range(4))
    assert record.duration >= 0.85


def test_server_sent_events_arrive_one_by_one(mesh, client):
    with client.get("http://ratings:9080/sse/3/250", stream=True, timeout=10) as r:
        assert r.headers["content-type"] == "text/event-stream"
        events = _timed_lines(r)
    assert [e for _, e in events] == ["data: 0", "data: 1", "data: 2"]
    assert events[1][0] - events[0][0] >= 0.2


def test_the_route_timeout_cuts_a_stream_that_outlives_it(mesh, client):
    mesh.apply(
        vs("hosts: [ratings]\nhttp:\n- route: [{destination: {host: ratings}}]\n  timeout: 700ms\n")
    )
    got: list[str] = []
    t0 = time.monotonic()
    with client.get("http://ratings:9080/sse/20/200", stream=True, timeout=10) as r:
        assert r.status_code == 200  # the head went out before the timeout
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for line in r.iter_lines(decode_unicode=True):
                if line:
                    got.append(line)
    elapsed = time.monotonic() - t0
    assert 2 <= len(got) <= 5 and 0.65 <= elapsed < 2.0
    record = mesh.records[-1]
    assert record.status == 200 and "UT" in record.flags
    assert record.details == "upstream_response_timeout"
    assert any("route timeout 0.7s expired while the body streamed" in n for n in record.notes)
    assert (
        mesh.stats["cluster.outbound|9080||ratings.default.svc.cluster.local.upstream_rq_timeout"]
        == 1
    )


def test_a_long_route_timeout_lets_a_stream_run(mesh, client):
    mesh.apply(
        vs(
            "hosts: [ratings]\nhttp:\n- route: [{destination: {host: ratings}}]\n  timeout: 86400s\n"
        )
    )
    with client.get("http://ratings:9080/sse/6/150", stream=True, timeout=10) as r:
        events = [e for e in r.iter_lines(decode_unicode=True) if e]
    assert len(events) == 6
    assert mesh.records[-1].flags == ()


def test_a_per_try_timeout_ends_with_the_head(mesh, client):
    """Envoy ignores the per-try timeout once the response has started downstream."""
    mesh.apply(
        vs(
            "hosts: [ratings]\nhttp:\n- route: [{destination: {host: ratings}}]\n"
            "  retries: {attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}\n"
        )
    )
    with client.get("http://ratings:9080/stream/4/250", stream=True, timeout=10) as r:
        lines = [line for line in r.iter_lines(decode_unicode=True) if line]
    assert len(lines) == 4
    record = mesh.records[-1]
    assert record.flags == () and len(record.attempts) == 1


def test_an_upstream_that_breaks_the_body_off_resets_the_client(mesh, client, upstreams):
    with client.get("http://ratings:9080/cut/2", stream=True, timeout=10) as r:
        assert r.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for _ in r.iter_content(1):
                pass
    record = mesh.records[-1]
    assert record.status == 200 and "UC" in record.flags
    assert record.details == "upstream_reset_after_response_started{connection_termination}"
    assert len(record.attempts) == 1  # a body cut after the head is never retried


def test_a_client_that_leaves_mid_stream_is_recorded_dc(mesh, upstreams):
    with socket.create_connection(("127.0.0.1", mesh.port), timeout=5) as s:
        s.sendall(b"GET http://ratings:9080/sse/50/100 HTTP/1.1\r\nHost: ratings:9080\r\n\r\n")
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200")
    assert wait_for(lambda: mesh.records)
    record = mesh.records[-1]
    assert "DC" in record.flags and record.status == 200
    assert any("went away while the body streamed" in n for n in record.notes)
    assert record.duration < 3  # not the 5 s the upstream would have streamed


def test_a_streaming_request_holds_its_connection_slot(mesh, client):
    """A circuit breaker counts a streamed response as active until its body ends: with one
    connection allowed, a second request waits in the pending queue until the stream ends."""
    mesh.apply(
        """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 5}
"""
    )
    done: dict[str, float] = {}

    def second() -> None:
        with requests.Session() as other:
            other.trust_env = False
            r = other.get("http://ratings:9080/", proxies={"http": mesh.url}, timeout=10)
            done["status"], done["at"] = r.status_code, time.monotonic()

    with client.get("http://ratings:9080/sse/5/200", stream=True, timeout=10) as first:
        assert first.status_code == 200
        waiter = threading.Thread(target=second)
        waiter.start()
        events = [e for e in first.iter_lines(decode_unicode=True) if e]
        ended = time.monotonic()
    waiter.join(10)
    assert len(events) == 5
    assert done["status"] == 200 and done["at"] >= ended - 0.05
    assert (
        mesh.stats[
            "cluster.outbound|9080||ratings.default.svc.cluster.local.upstream_rq_pending_total"
        ]
        == 1
    )


SECURE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: secure}}
spec:
  hosts: [secure.example.test]
  ports: [{{number: 443, name: https, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{https: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure}}
spec:
  hosts: [secure.example.test]
  http:
  - route: [{{destination: {{host: secure.example.test}}}}]
    timeout: {timeout}
"""


def h2_get(mesh, path: str) -> list[tuple[float, object]]:
    """GET ``path`` over HTTP/2 (TLS with ALPN h2, through CONNECT): each h2 event with the
    time it arrived, until the stream ends or is reset."""
    return h2_exchange(tls_through_connect(mesh), get(path))


def test_an_http2_client_gets_the_body_frame_by_frame(mesh, upstreams):
    import h2.events

    mesh.apply(SECURE.format(port=upstreams["other"].port, timeout="10s"))
    seen = h2_get(mesh, "/sse/3/250")
    data = [(t, e.data) for t, e in seen if isinstance(e, h2.events.DataReceived)]
    assert b"".join(d for _, d in data) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert data[-1][0] - data[0][0] >= 0.4  # three frames over half a second, not one
    assert isinstance(seen[-1][1], h2.events.StreamEnded)
    record = mesh.records[-1]
    assert (record.protocol, record.status, record.flags) == ("HTTP/2", 200, ())


def test_the_route_timeout_resets_an_http2_stream(mesh, upstreams):
    import h2.events

    mesh.apply(SECURE.format(port=upstreams["other"].port, timeout="600ms"))
    seen = h2_get(mesh, "/sse/20/200")
    assert any(isinstance(e, h2.events.DataReceived) for _, e in seen)
    assert isinstance(seen[-1][1], h2.events.StreamReset)  # RST_STREAM, not a clean end
    record = mesh.records[-1]
    assert (record.protocol, record.status, record.flags) == ("HTTP/2", 200, ("UT",))


def test_httpx_with_http2_on_streams_server_sent_events(mesh, upstreams):
    """httpx offers ALPN ``http/1.1`` before ``h2``; chaoskit chooses ``h2`` as Envoy does
    (chaoskit.proxy.alpn), and the events stream one by one as HTTP/2 DATA frames."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("h2")
    mesh.apply(SECURE.format(port=upstreams["other"].port, timeout="10s"))
    ca = ssl.create_default_context(cafile=str(mesh.ca_path))
    with httpx.Client(http2=True, proxy=mesh.url, verify=ca, timeout=10) as client:
        t0 = time.monotonic()
        with client.stream("GET", "https://secure.example.test/sse/3/250") as r:
            assert r.status_code == 200
            assert r.http_version == "HTTP/2"
            events = [(time.monotonic() - t0, line) for line in r.iter_lines() if line]
    assert [e for _, e in events] == ["data: 0", "data: 1", "data: 2"]
    assert events[-1][0] - events[0][0] >= 0.4
    record = mesh.records[-1]
    assert (record.protocol, record.status, record.flags) == ("HTTP/2", 200, ())


def test_an_internal_error_mid_body_is_recorded_as_such_and_resets_the_client(
    mesh, client, monkeypatch
):
    from chaoskit.proxy import response_stream

    async def broken(first, body, sink):
        await sink.send(b"data: 0\n\n")
        raise RuntimeError("a bug in the relay")

    monkeypatch.setattr(response_stream, "relay_body", broken)
    with client.get("http://ratings:9080/sse/5/100", stream=True, timeout=10) as r:
        assert r.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(r.iter_lines())
    record = mesh.records[-1]
    assert "DC" not in record.flags and record.bytes_sent == len(b"data: 0\n\n")
    assert any("chaoskit internal error while streaming the body" in n for n in record.notes)
    assert not any("went away" in n for n in record.notes)
