"""The plugin as a user meets it: the chaos fixture, HTTPS, httpx and the marker."""

import ssl

import httpx
import pytest
from chaoskit_pytest import Chaos

TEAPOT = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
  - fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: shop}}]
"""


def test_the_upstream_answers_through_the_proxy(chaos: Chaos) -> None:
    r = chaos.session().get("http://shop/", timeout=10)
    assert (r.status_code, r.text) == (200, "hello from shop")


def test_a_fault_from_the_chaos_fixture(chaos: Chaos) -> None:
    chaos.fault("shop", abort=503)
    assert chaos.session().get("http://shop/", timeout=10).status_code == 503
    assert chaos.records[-1].status == 503


def test_https_is_intercepted_with_the_proxy_ca(chaos: Chaos) -> None:
    """Runs under `filterwarnings = error`: the TLS handshake must not warn."""
    r = chaos.session().get("https://secure-shop/", timeout=10)
    assert (r.status_code, r.text) == (200, "hello from shop")
    assert chaos.records[-1].scheme == "https"


def test_httpx_through_the_proxy(chaos: Chaos) -> None:
    chaos.route_fault("shop", abort=500)
    chaos.route_fault("secure-shop", abort=500)
    trust = ssl.create_default_context(cafile=chaos.ca_path)  # httpx deprecates verify=<path>
    with httpx.Client(proxy=chaos.url, verify=trust, timeout=10) as client:
        assert client.get("http://shop/").status_code == 500
        assert client.get("https://secure-shop/").status_code == 500


@pytest.mark.chaos(TEAPOT)
def test_the_chaos_marker(chaos: Chaos) -> None:
    assert chaos.session().get("http://shop/", timeout=10).status_code == 418
