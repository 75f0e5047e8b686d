"""A workload's own listener: requests through it come from that workload with nothing in the
proxy URL (as each pod's sidecar knows its pod); an anonymous caller in a mesh that declares
workloads is said in the record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from chaoskit.errors import ProxyError
from chaoskit.proxy.api import Proxy
from chaoskit.proxy.enforcer import UNNAMED_CALLER
from chaoskit.testing import Upstream
from tests.integration.conftest import mesh_yaml

pytestmark = pytest.mark.integration

BY_CALLER = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""


@pytest.fixture(scope="module")
def named(upstreams: dict[str, Upstream], tmp_path_factory) -> Iterator[Proxy]:
    config = mesh_yaml(upstreams) + "---\n" + BY_CALLER
    state = tmp_path_factory.mktemp("state")
    with Proxy(config, seed=1, state_dir=state, workload_ports={"productpage": 0}) as proxy:
        yield proxy


def via(proxy_url: str) -> requests.Response:
    return requests.get("http://reviews:9080/", proxies={"http": proxy_url}, timeout=10)


def test_a_workload_listener_names_the_caller_without_credentials(named: Proxy) -> None:
    r = via(named.workload_url("productpage"))
    assert r.json()["upstream"] == "v2"
    assert UNNAMED_CALLER not in named.records[-1].notes
    # the shared listener still takes the name from the proxy URL
    assert via(named.url_for("productpage")).json()["upstream"] == "v2"


def test_an_anonymous_caller_is_said_where_the_mesh_declares_workloads(named: Proxy) -> None:
    assert via(named.url).json()["upstream"] == "v1"
    assert UNNAMED_CALLER in named.records[-1].notes


def test_a_listener_for_an_undeclared_workload_is_refused(upstreams, tmp_path) -> None:
    with pytest.raises(ProxyError, match=r"'prodpage' .* did you mean \"productpage\""):
        Proxy(mesh_yaml(upstreams), state_dir=tmp_path, workload_ports={"prodpage": 0})
