"""Real sockets on 127.0.0.1: upstream servers and one in-process chaoskit proxy per module."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
import requests

from chaoskit.proxy.api import Proxy
from chaoskit.testing import Upstream

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    ups = {name: Upstream(name).start() for name in ("v1", "v2", "v3", "ratings", "other")}
    yield ups
    for up in ups.values():
        up.stop()


def mesh_yaml(ups: dict[str, Upstream]) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: reviews}}
        spec:
          hosts: [reviews]
          ports: [{{number: 9080, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints:
          - {{address: 127.0.0.1, ports: {{http: {ups["v1"].port}}}, labels: {{version: v1}}}}
          - {{address: 127.0.0.1, ports: {{http: {ups["v2"].port}}}, labels: {{version: v2}}}}
          - {{address: 127.0.0.1, ports: {{http: {ups["v3"].port}}}, labels: {{version: v3}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: ratings}}
        spec:
          hosts: [ratings]
          ports: [{{number: 9080, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints:
          - {{address: 127.0.0.1, ports: {{http: {ups["ratings"].port}}}, labels: {{version: v1}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: reviews}}
        spec:
          host: reviews
          trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
          subsets:
          - {{name: v1, labels: {{version: v1}}}}
          - {{name: v2, labels: {{version: v2}}}}
          - {{name: v3, labels: {{version: v3}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: productpage}}
        spec: {{labels: {{app: productpage, version: v1}}}}
        """)


@pytest.fixture(scope="module")
def proxy(upstreams, tmp_path_factory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(mesh_yaml(upstreams), seed=7, state_dir=state, gateway_ports={8080: 0}) as p:
        yield p


@pytest.fixture
def mesh(proxy, upstreams) -> Iterator[Proxy]:
    """The module's proxy, reset to the base mesh with fresh records for each test."""
    proxy.apply()
    proxy.reset()
    for up in upstreams.values():
        up.clear()
    yield proxy


@pytest.fixture
def client(mesh) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.proxies = {"http": mesh.url}
        s.trust_env = False
        yield s
