"""Istio's Bookinfo files, byte for byte, carry real traffic (issue #15, "Done when").

The vendored ``samples/bookinfo/platform/kube/bookinfo.yaml`` and ``networking/*.yaml``
(tests/data/istio-samples/) are loaded unchanged; the only addition is a LocalWorkloads mapping of
each Deployment to a local upstream. Requests go through the Gateway of ``bookinfo-gateway.yaml``
and through the mesh, and a later ``kubectl apply`` of a routing task changes the answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chaoskit.proxy.api import Proxy
from chaoskit.testing import Upstream

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "istio-samples"
NETWORKING = SAMPLES / "networking"


@pytest.fixture(scope="module")
def bookinfo(upstreams: dict[str, Upstream], tmp_path_factory) -> Iterator[Proxy]:
    mapping = f"""\
apiVersion: chaoskit.dev/v1alpha1
kind: LocalWorkloads
metadata: {{name: here}}
spec:
  workloads:
  - {{name: productpage-v1, port: {upstreams["other"].port}}}
  - {{name: reviews-v1, port: {upstreams["v1"].port}}}
  - {{name: reviews-v2, port: {upstreams["v2"].port}}}
  - {{name: reviews-v3, port: {upstreams["v3"].port}}}
  - {{name: ratings-v1, port: {upstreams["ratings"].port}}}
"""
    files = [
        SAMPLES / "platform" / "kube" / "bookinfo.yaml",
        NETWORKING / "destination-rule-all.yaml",
        NETWORKING / "virtual-service-all-v1.yaml",
        NETWORKING / "bookinfo-gateway.yaml",
    ]
    state = tmp_path_factory.mktemp("state")
    with Proxy(*files, mapping, seed=5, state_dir=state, gateway_ports={8080: 0}) as proxy:
        yield proxy


def who(response: requests.Response) -> str:
    assert response.status_code == 200, response.status_code
    return str(response.json()["upstream"])


def test_the_gateway_and_the_mesh_route_with_the_unchanged_files(bookinfo: Proxy) -> None:
    page = requests.get(bookinfo.gateway_url(8080) + "/productpage", timeout=10)
    assert who(page) == "other"  # productpage-v1
    mesh = {"http": bookinfo.url_for("productpage-v1")}
    assert who(requests.get("http://reviews:9080/", proxies=mesh, timeout=10)) == "v1"
    bookinfo.apply(NETWORKING / "virtual-service-reviews-jason-v2-v3.yaml")
    jason = requests.get(
        "http://reviews:9080/", proxies=mesh, headers={"end-user": "jason"}, timeout=10
    )
    assert who(jason) == "v2"
    assert who(requests.get("http://reviews:9080/", proxies=mesh, timeout=10)) == "v3"
