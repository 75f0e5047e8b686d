"""The admin listener refuses DNS-rebinding Hosts and cross-site state changes, and still
answers curl and scripts (no Origin, no Fetch Metadata)."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from chaoskit.proxy.admin import ChaosAdmin, loopback_host
from chaoskit.proxy.core import ChaosCore


@pytest.fixture(scope="module")
def admin() -> ChaosAdmin:
    return ChaosAdmin(ChaosCore(), lambda flow: True)


def ask(
    admin: ChaosAdmin,
    method: str,
    path: str,
    *headers: tuple[str, str],
    host: str = "127.0.0.1:15000",
) -> http.Response:
    fields = [(b"host", host.encode())] if host else []
    fields += [(k.encode(), v.encode()) for k, v in headers]
    req = tutils.treq(
        method=method.encode(), path=path.encode(), headers=http.Headers(fields), content=b""
    )
    flow = tflow.tflow(req=req)
    admin.request(flow)
    assert flow.response is not None
    return flow.response


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:15000", "localhost:15000", "LOCALHOST:9901", "[::1]:15000", "127.0.0.1",
     "localhost", "localhost.:15000", "127.0.0.2:15000", "[::1]"],
)  # fmt: skip
def test_loopback_names_are_accepted(host):
    assert loopback_host(host)


@pytest.mark.parametrize(
    "host",
    ["evil.test:15000", "evil.test", "127.0.0.1.evil.test:15000", "localhost.evil.test",
     "10.0.0.5:15000", "0.0.0.0:15000", "[::]:15000", "[::ffff:127.0.0.1]:15000",
     "127.1:15000", "0x7f000001", "localhost:abc", "[::1]x", "[::1", "", " "],
)  # fmt: skip
def test_every_other_host_is_refused(host):
    assert not loopback_host(host)


def test_a_rebinding_host_is_refused_for_reads_too(admin):
    """A rebound page is "same origin" for the browser: only Host tells it apart."""
    r = ask(admin, "GET", "/config_dump", host="evil.test:15000")
    assert r.status_code == 403 and b"DNS rebinding" in r.content
    assert ask(admin, "GET", "/ready", host="evil.test:15000").status_code == 403


def test_curl_without_origin_is_answered(admin):
    assert ask(admin, "GET", "/ready").content == b"LIVE\n"
    assert ask(admin, "GET", "/ready", host="localhost:15000").status_code == 200
    assert ask(admin, "GET", "/ready", host="").status_code == 200  # HTTP/1.0, no Host
    assert ask(admin, "POST", "/reset_counters").content == b"OK\n"


@pytest.mark.parametrize(
    "headers",
    [
        [("origin", "http://evil.test")],
        [("origin", "null")],  # sandboxed iframe, file:// page
        [("origin", "http://localhost:3000")],  # another local dev server: another origin
        [("origin", "http://127.0.0.1:15000.evil.test")],
        [("sec-fetch-site", "cross-site")],
        [("sec-fetch-site", "same-site"), ("origin", "http://127.0.0.1:15000")],
    ],
)
def test_cross_site_posts_are_refused(admin, headers):
    admin.core.pipeline.stats.inc("http.downstream_rq_total")
    r = ask(admin, "POST", "/reset_counters", *headers)
    assert r.status_code == 403 and b"cross-site" in r.content
    assert admin.core.pipeline.stats.get("http.downstream_rq_total") > 0  # not reset


@pytest.mark.parametrize(
    "headers",
    [
        [("origin", "http://127.0.0.1:15000")],
        [("sec-fetch-site", "same-origin"), ("origin", "http://127.0.0.1:15000")],
        [("sec-fetch-site", "none")],  # typed into the address bar, a bookmark
    ],
)
def test_same_origin_posts_are_answered(admin, headers):
    assert ask(admin, "POST", "/reset_counters", *headers).content == b"OK\n"


def test_cross_site_reads_are_answered_the_browser_keeps_them_from_the_page(admin):
    """GET changes nothing; the same-origin policy keeps the body from a cross-site page."""
    r = ask(
        admin, "GET", "/ready", ("origin", "http://evil.test"), ("sec-fetch-site", "cross-site")
    )
    assert r.status_code == 200


def test_stats_answer_at_envoys_prometheus_path_too(admin):
    plain, prometheus = ask(admin, "GET", "/stats"), ask(admin, "GET", "/stats/prometheus")
    assert prometheus.status_code == 200
    assert prometheus.headers["content-type"] == "text/plain; version=0.0.4"
    assert prometheus.content == plain.content
