"""Bookinfo's Kubernetes manifests and Istio's unchanged routing YAML, run through the proxy with
only a LocalWorkloads mapping of Deployments to local ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chaoskit.proxy.api import Proxy
from chaoskit.testing import Upstream

pytestmark = pytest.mark.integration

BOOKINFO = Path(__file__).resolve().parents[2] / "experiments" / "bookinfo"


@pytest.fixture(scope="module")
def bookinfo(upstreams: dict[str, Upstream], tmp_path_factory) -> Iterator[Proxy]:
    mapping = f"""\
apiVersion: chaoskit.dev/v1alpha1
kind: LocalWorkloads
metadata: {{name: here}}
spec:
  workloads:
  - {{name: reviews-v1, port: {upstreams["v1"].port}}}
  - {{name: reviews-v2, port: {upstreams["v2"].port}}}
  - {{name: reviews-v3, port: {upstreams["v3"].port}}}
  - {{name: ratings-v1, port: {upstreams["ratings"].port}}}
"""
    config = "\n---\n".join(
        [
            (BOOKINFO / "kube" / "bookinfo.yaml").read_text(),
            mapping,
            (BOOKINFO / "mesh" / "destination-rules.yaml").read_text(),
            (BOOKINFO / "variants" / "reviews-test-v2.yaml").read_text(),
        ]
    )
    with Proxy(config, seed=3, state_dir=tmp_path_factory.mktemp("state")) as proxy:
        yield proxy


def get(proxy: Proxy, url: str, caller: str = "", **headers: str) -> requests.Response:
    who = f"{caller}:x@" if caller else ""
    proxy_url = proxy.url.replace("http://", f"http://{who}")
    return requests.get(url, proxies={"http": proxy_url}, headers=headers, timeout=10)


def test_subsets_select_deployments_by_their_pod_labels(bookinfo: Proxy) -> None:
    assert get(bookinfo, "http://reviews:9080/").json()["upstream"] == "v1"
    jason = get(bookinfo, "http://reviews:9080/", **{"end-user": "jason"})
    assert jason.json()["upstream"] == "v2"
    assert get(bookinfo, "http://ratings:9080/health").json()["upstream"] == "ratings"


def test_a_deployment_without_a_local_address_is_no_endpoint(bookinfo: Proxy) -> None:
    r = get(bookinfo, "http://details:9080/details/0", caller="productpage-v1")
    assert r.status_code == 503 and r.text == "no healthy upstream"
    assert bookinfo.records[-1].flags == ("UH",)
