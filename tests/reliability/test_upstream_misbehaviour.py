"""Upstreams that break HTTP: the proxy answers like Envoy, never hangs, never leaks, keeps serving.

Each test ends with an ordinary request through the proxy (``healthy``) and, where the proxy
held an upstream connection, proof that it let go of it.
"""

from __future__ import annotations

import time

import pytest
import requests

from chaoskit.proxy import upstream
from tests.builders import route_to
from tests.reliability.conftest import (
    all_released,
    buffered,
    healthy,
    rss_mb,
    session,
    wait_for,
)
from tests.reliability.servers import MiB

RESET_PREFIX = "upstream connect error or disconnect/reset before headers. reset reason: "


@pytest.fixture
def whole(mesh):
    """Bodies buffered whole (:func:`~tests.reliability.conftest.buffered`)."""
    with buffered(mesh):
        yield


def bad_route(extra: str = "") -> str:
    return route_to("bad", extra)


def test_upstream_refuses_the_connection(mesh, client):
    r = client.get("http://dead:9080/")
    assert r.status_code == 503
    assert r.text == RESET_PREFIX + (
        "connection failure, transport failure reason: delayed connect error: 111"
    )
    (record,) = mesh.records
    assert record.flags == ("UF",) and record.attempts[0].outcome == "connect-failure"
    assert healthy(mesh) and all_released(mesh)


def test_upstream_accepts_then_closes_before_responding(mesh, client, bad):
    r = client.get("http://bad:9080/close")
    assert (r.status_code, r.text) == (503, RESET_PREFIX + "connection termination")
    assert mesh.records[-1].flags == ("UC",)
    assert healthy(mesh) and all_released(mesh)


def test_upstream_resets_mid_body(mesh, client, bad):
    # Envoy's rule: the head has gone to the client, so the client's stream is reset (the
    # connection closes short of the announced length) and nothing is retried
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.get("http://bad:9080/reset-mid-body")
    record = mesh.records[-1]
    assert (record.status, record.flags) == (200, ("UC",))
    assert record.details == "upstream_reset_after_response_started{connection_termination}"
    assert record.bytes_sent == 100
    assert healthy(mesh) and all_released(mesh)


def test_a_reset_mid_body_is_a_clean_503_when_the_body_is_buffered(mesh, client, bad, whole):
    # a buffered body: the client has seen nothing yet
    r = client.get("http://bad:9080/reset-mid-body")
    assert (r.status_code, r.text) == (503, RESET_PREFIX + "connection termination")
    assert mesh.records[-1].flags == ("UC",)
    assert healthy(mesh) and all_released(mesh)


def test_upstream_sends_malformed_http(mesh, client, bad):
    r = client.get("http://bad:9080/malformed")
    assert r.status_code == 503
    assert r.text.startswith(RESET_PREFIX + "protocol error")
    assert mesh.records[-1].flags == ("UPE",)
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/malformed")))
    assert healthy(mesh) and all_released(mesh)


def test_headers_then_stall_ends_at_the_route_timeout(mesh, client, bad):
    mesh.apply(bad_route("timeout: 0.4s\n"))
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.get("http://bad:9080/stall-after-headers", timeout=30)
    elapsed = time.monotonic() - t0
    assert 0.35 < elapsed < 10  # ended by the timeout, never a hang
    record = mesh.records[-1]
    assert (record.status, record.flags) == (200, ("UT",))
    assert record.details == "upstream_response_timeout"
    # the stalled upstream connection was closed, not left open
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/stall-after-headers")))
    assert healthy(mesh) and all_released(mesh)


def test_headers_then_stall_is_not_cut_by_the_per_try_timeout(mesh, client, bad):
    """Envoy ignores the per-try timeout once the response has started downstream: only the
    route timeout ends a stalled body, and nothing is retried."""
    mesh.apply(
        bad_route("timeout: 1s\nretries: {attempts: 2, perTryTimeout: 0.2s, retryOn: 5xx}\n")
    )
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.get("http://bad:9080/stall-after-headers", timeout=30)
    assert time.monotonic() - t0 >= 0.9
    record = mesh.records[-1]
    assert [a.outcome for a in record.attempts] == ["response"]
    assert record.flags == ("UT",)
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/stall-after-headers")))
    assert healthy(mesh) and all_released(mesh)


def test_headers_then_stall_ends_at_each_per_try_timeout_when_buffered(mesh, client, bad, whole):
    mesh.apply(
        bad_route("timeout: 20s\nretries: {attempts: 2, perTryTimeout: 0.2s, retryOn: 5xx}\n")
    )
    r = client.get("http://bad:9080/stall-after-headers", timeout=30)
    assert (r.status_code, r.text) == (504, "upstream request timeout")
    record = mesh.records[-1]
    assert [a.outcome for a in record.attempts] == ["per-try-timeout"] * 3
    assert record.flags == ("URX", "UT")
    assert wait_for(lambda: len(bad.for_path("/stall-after-headers")) == 3)
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/stall-after-headers")))
    assert healthy(mesh) and all_released(mesh)


def test_an_upstream_that_never_answers_ends_at_the_route_timeout(mesh, client, bad):
    mesh.apply(bad_route("timeout: 0.3s\n"))
    r = client.get("http://bad:9080/stall", timeout=30)
    assert r.status_code == 504
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/stall")))
    assert healthy(mesh) and all_released(mesh)


def _assert_too_large(mesh, r):
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert r.headers["x-chaoskit-error"] == "response-payload-too-large"
    record = mesh.records[-1]
    assert record.details == "response_payload_too_large"
    assert record.attempts[-1].outcome == "response-too-large"
    assert record.attempts[-1].status == 200
    assert any("larger than 64 MiB" in n for n in record.notes)


def test_a_huge_body_streams_through_in_bounded_memory(mesh, bad):
    """1 GiB announced: the client reads 16 MiB of it as it comes, then leaves. The proxy holds
    at most a few hundred KiB of it at a time, and lets the upstream go when the client goes."""
    before = rss_mb()
    with session(mesh.url) as s:
        r = s.get("http://bad:9080/huge-announced", stream=True, timeout=30)
        assert r.status_code == 200 and r.headers["content-length"] == str(1024 * MiB)
        got = 0
        for piece in r.iter_content(MiB):
            got += len(piece)
            if got >= 16 * MiB:
                break
        r.close()
    assert rss_mb() - before < 48
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/huge-announced")))
    (conn,) = bad.for_path("/huge-announced")
    # the proxy let the upstream go soon after the client left (the server would send 256 MiB)
    assert conn.sent < 200 * MiB
    assert wait_for(lambda: bool(mesh.records))
    record = mesh.records[-1]
    assert record.status == 200 and "DC" in record.flags and record.bytes_sent >= 16 * MiB
    assert healthy(mesh) and all_released(mesh)


def _assert_too_large(mesh, r):
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    assert r.headers["x-chaoskit-error"] == "response-payload-too-large"
    record = mesh.records[-1]
    assert record.details == "response_payload_too_large"
    assert record.attempts[-1].outcome == "response-too-large"
    assert record.attempts[-1].status == 200
    assert any("larger than 64 MiB" in n for n in record.notes)


def test_a_huge_announced_body_to_buffer_is_refused_before_it_is_read(mesh, client, bad, whole):
    before = rss_mb()
    r = client.get("http://bad:9080/huge-announced", timeout=30)
    _assert_too_large(mesh, r)
    # refused on the content-length alone: the connection is dropped, the body never buffered
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/huge-announced")))
    (conn,) = bad.for_path("/huge-announced")
    assert conn.sent < 64 * MiB
    assert rss_mb() - before < 48
    assert healthy(mesh) and all_released(mesh)


def test_a_huge_chunked_body_to_buffer_is_cut_off_at_the_buffer_limit(mesh, client, bad, whole):
    r = client.get("http://bad:9080/huge-chunked", timeout=60)
    _assert_too_large(mesh, r)
    assert wait_for(lambda: all(c.peer_closed for c in bad.for_path("/huge-chunked")))
    (conn,) = bad.for_path("/huge-chunked")
    # the proxy stopped reading at the limit (plus what socket buffers held): bounded buffering
    assert conn.sent < upstream.MAX_RESPONSE_BODY + 16 * MiB
    assert healthy(mesh) and all_released(mesh)


def test_a_too_large_body_is_not_retried_when_the_upstream_said_200(mesh, client, bad, whole):
    mesh.apply(bad_route("retries: {attempts: 3, retryOn: 5xx}\n"))
    r = client.get("http://bad:9080/huge-announced", timeout=30)
    _assert_too_large(mesh, r)
    assert len(mesh.records[-1].attempts) == 1


def test_bodies_under_the_limit_pass_whole(mesh, client, bad):
    r = client.get(f"http://bad:9080/big/{4 * MiB}", timeout=30)
    assert r.status_code == 200 and r.content == b"z" * (4 * MiB)
    assert r.headers["content-length"] == str(4 * MiB)


def test_the_proxy_keeps_serving_others_while_upstreams_misbehave(mesh, bad):
    """Stalls, resets and garbage in parallel with ordinary traffic: the ordinary requests
    are all answered, and every misbehaving one gets its local reply."""
    import concurrent.futures

    mesh.apply(bad_route("timeout: 1s\n"))
    paths = ["/close", "/reset-mid-body", "/malformed", "/stall-after-headers", "/stall"] * 4

    def one(url: str) -> int | str:
        with requests.Session() as s:
            s.trust_env = False
            try:
                return s.get(url, proxies={"http": mesh.url}, timeout=30).status_code
            except requests.exceptions.ChunkedEncodingError:
                return "reset after the head"

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        bad_futures = [pool.submit(one, f"http://bad:9080{p}") for p in paths]
        good = [pool.submit(one, "http://ratings:9080/") for _ in range(40)]
        assert [f.result() for f in good] == [200] * 40
        assert {f.result() for f in bad_futures} == {503, 504, "reset after the head"}
    assert wait_for(lambda: all_released(mesh))
    assert mesh.in_flight == 0
