"""One host, several namespaces, through a real proxy (issue #15 item 4).

Three ServiceEntries define ``api.example.com``: namespace-local ones in ``a`` and ``b`` and a
public one in ``c``. The caller's namespace comes from its WorkloadEntry, named in the proxy URL
(docs/proxy.md, caller identity); each caller must reach the entry Istio gives its namespace
(istio/istio pilot/pkg/model/push_context.go ``servicesExportedToNamespace``, sidecar.go
``appendSidecarServices``), on real sockets.
"""

from __future__ import annotations

import textwrap

import requests

from chaoskit.proxy.api import Proxy
from chaoskit.testing import Upstream


def entry(namespace: str, upstream: Upstream, export_to: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: api, namespace: {namespace}}}
        spec:
          hosts: [api.example.com]
          exportTo: {export_to}
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream.port}}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: caller-{namespace}, namespace: {namespace}}}
        spec: {{labels: {{app: caller-{namespace}}}}}
        ---
        """)


def test_callers_of_two_namespaces_reach_their_own_entry_of_one_host(upstreams, tmp_path):
    mesh = (
        entry("c", upstreams["other"], '["*"]')
        + entry("a", upstreams["v1"], '["."]')
        + entry("b", upstreams["v2"], '["."]')
        + "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        "metadata: {name: caller-d, namespace: d}\nspec: {labels: {app: caller-d}}\n"
    )
    with Proxy(mesh, seed=1, state_dir=tmp_path) as proxy:
        seen = {}
        for caller in ("caller-a", "caller-b", "caller-c", "caller-d"):
            r = requests.get(
                "http://api.example.com/", proxies={"http": proxy.url_for(caller)}, timeout=10
            )
            assert r.status_code == 200, (caller, r.status_code)
            seen[caller] = r.json()["upstream"]
        assert seen == {
            "caller-a": "v1",
            "caller-b": "v2",
            "caller-c": "other",
            "caller-d": "other",
        }
        assert {r.source: r.cluster for r in proxy.records} == dict.fromkeys(
            seen, "outbound|80||api.example.com"
        )
