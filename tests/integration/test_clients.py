"""Python HTTP clients other than requests, through a real proxy (docs/pytest.md "HTTP clients").

For each client: plain HTTP through the proxy with the caller named in the proxy URL, HTTPS to a
registry host intercepted with the proxy's CA, and how it picks the proxy up from the
environment (what ``chaos.env`` gives a process under test). The records prove each request
went through the proxy and who sent it; a request that bypassed it leaves none.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
import urllib3

from chaoskit.proxy.api import Proxy

pytestmark = pytest.mark.integration

RATINGS = "http://ratings:9080/hello"


def only_record(proxy: Proxy):
    """The one request the proxy saw (a request that bypassed it leaves no record)."""
    (record,) = proxy.records
    return record


@pytest.fixture
def proxy_env(mesh: Proxy, monkeypatch) -> Iterator[Proxy]:
    """The environment ``chaos.env_for("productpage")`` gives a process under test."""
    url = mesh.url_for("productpage")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("SSL_CERT_FILE", str(mesh.ca_path))
    yield mesh


def trusting(proxy: Proxy) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(proxy.ca_path))


# -- httpx ---------------------------------------------------------------------------------------


def test_httpx_client_names_the_caller_in_the_proxy_url(mesh):
    with httpx.Client(proxy=mesh.url_for("productpage"), timeout=10) as client:
        r = client.get(RATINGS)
    assert (r.status_code, r.headers["server"], r.json()["upstream"]) == (200, "envoy", "ratings")
    assert only_record(mesh).source == "productpage"


def test_httpx_https_to_a_registry_host_is_intercepted_with_the_ca(mesh):
    with httpx.Client(proxy=mesh.url, verify=trusting(mesh), timeout=10) as client:
        r = client.get("https://ratings:9080/secure")
    assert (r.status_code, r.json()["path"]) == (200, "/secure")
    assert only_record(mesh).path == "/secure"


def test_httpx_async_client(mesh):
    async def main() -> httpx.Response:
        async with httpx.AsyncClient(proxy=mesh.url_for("productpage"), timeout=10) as client:
            return await client.get(RATINGS)

    r = asyncio.run(main())
    assert r.json()["upstream"] == "ratings"
    assert only_record(mesh).source == "productpage"


def test_httpx_reads_the_proxy_from_the_environment(proxy_env):
    with httpx.Client(timeout=10) as client:
        assert client.get(RATINGS).json()["upstream"] == "ratings"
    assert only_record(proxy_env).source == "productpage"


def test_httpx_with_a_custom_transport_ignores_http_proxy(proxy_env):
    # A transport given to the client replaces the environment's proxy transports: the request
    # goes straight to "ratings", which only the mesh can resolve.
    with (
        httpx.Client(transport=httpx.HTTPTransport(retries=1), timeout=10) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(RATINGS)
    assert not proxy_env.records


def test_httpx_custom_transport_with_the_proxy_of_the_environment(proxy_env):
    # The fix: give each transport the proxy (one per scheme, as httpx mounts them itself).
    mounts = {
        "http://": httpx.HTTPTransport(proxy=os.environ["HTTP_PROXY"], retries=1),
        "https://": httpx.HTTPTransport(proxy=os.environ["HTTPS_PROXY"], retries=1),
    }
    with httpx.Client(mounts=mounts, timeout=10) as client:
        assert client.get(RATINGS).json()["upstream"] == "ratings"
    assert only_record(proxy_env).source == "productpage"


# -- aiohttp -------------------------------------------------------------------------------------


async def aiohttp_get(url: str, **options) -> tuple[int, dict[str, object]]:
    request = {k: options.pop(k) for k in ("proxy", "ssl") if k in options}
    async with (
        aiohttp.ClientSession(**options) as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=10), **request) as r,
    ):
        return r.status, await r.json()


def test_aiohttp_takes_the_proxy_per_request(mesh):
    status, body = asyncio.run(aiohttp_get(RATINGS, proxy=mesh.url_for("productpage")))
    assert (status, body["upstream"]) == (200, "ratings")
    assert only_record(mesh).source == "productpage"


def test_aiohttp_reads_the_environment_only_with_trust_env(proxy_env):
    with pytest.raises(aiohttp.ClientConnectorError):
        asyncio.run(aiohttp_get(RATINGS))  # trust_env=False, the default: straight to "ratings"
    assert not proxy_env.records

    status, body = asyncio.run(aiohttp_get(RATINGS, trust_env=True))
    assert (status, body["upstream"]) == (200, "ratings")
    assert only_record(proxy_env).source == "productpage"


def test_aiohttp_https_with_the_ca(mesh):
    status, body = asyncio.run(
        aiohttp_get("https://ratings:9080/secure", proxy=mesh.url, ssl=trusting(mesh))
    )
    assert (status, body["path"]) == (200, "/secure")
    assert only_record(mesh).path == "/secure"


# -- urllib3 -------------------------------------------------------------------------------------


def test_urllib3_ignores_the_user_in_the_proxy_url(mesh):
    with urllib3.ProxyManager(mesh.url_for("productpage")) as http:
        assert http.request("GET", RATINGS, timeout=10).status == 200
    assert only_record(mesh).source == ""  # anonymous: the docs say to send the header


def test_urllib3_proxy_manager_names_the_caller_and_trusts_the_ca(mesh):
    caller = urllib3.make_headers(proxy_basic_auth="productpage:x")
    with urllib3.ProxyManager(mesh.url, proxy_headers=caller, ca_certs=str(mesh.ca_path)) as http:
        plain = http.request("GET", RATINGS, timeout=10)
        secure = http.request("GET", "https://ratings:9080/secure", timeout=10)
    assert (plain.status, plain.json()["upstream"]) == (200, "ratings")
    assert (secure.status, secure.json()["path"]) == (200, "/secure")
    assert [(r.path, r.source) for r in mesh.records] == [
        ("/hello", "productpage"),
        ("/secure", "productpage"),
    ]
