"""Generated configurations through the whole path a reload takes: load, validate across
resources, build the router, swap into a pipeline, route requests.

``tests/chaoskit/config/test_loader.py`` already shows the *loader* never raises on mutated or
random single resources. The gaps this closes: several resources at once through
cross-resource validation (``validated``, what ``Proxy.apply`` and the file watcher call), the
router and cluster state built from whatever passed, hostile YAML (alias bombs, deep nesting,
huge and binary input), and text that is taken for a path. The only exception allowed out is
:class:`~chaoskit.errors.ConfigError`.
"""

from __future__ import annotations

import json
import random
import string

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chaoskit.config.mesh import Mesh
from chaoskit.errors import ConfigError
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.upstream import UpstreamClient
from chaoskit.rng import Seeds
from chaoskit.routing.request import RequestInfo, Workload
from chaoskit.routing.router import Router
from chaoskit.sources import validated

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

MESH = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 19001}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 19002}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    connectionPool: {tcp: {maxConnections: 2}, http: {http1MaxPendingRequests: 1, maxRetries: 1}}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  gateways: [gw, mesh]
  http:
  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /api}}]
    fault: {delay: {fixedDelay: 1s, percentage: {value: 50}}, abort: {httpStatus: 503, percentage: {value: 10}}}
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
    timeout: 3s
    route:
    - {destination: {host: reviews, subset: v2}, weight: 80}
    - {destination: {host: reviews, subset: v1}, weight: 20}
    mirror: {host: reviews, subset: v1}
    headers: {request: {set: {x-a: b}}, response: {remove: [x-b]}}
  - rewrite: {uri: /v1}
    route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage}
spec: {labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: chaoskit.dev/v1alpha1
kind: UpstreamFault
metadata: {name: flaky}
spec: {host: reviews, subset: v1, abort: {httpStatus: 503}, sequence: [abort, pass], window: {after: 0s, for: 10s}}
---
apiVersion: chaoskit.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {defaults: istio-current, outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
"""

REQUESTS = [
    RequestInfo("GET", "http", "reviews:9080", "/api/x", port=9080,
                headers={"end-user": "jason", "x-user": "a"}),
    RequestInfo("POST", "http", "reviews", "/", port=80,
                source=Workload("productpage", "default", {"app": "productpage"})),
    RequestInfo("GET", "http", "example.com", "/", port=80),
]  # fmt: skip


def exercise(text: str) -> None:
    """Everything a reload does with a configuration, then route a few requests."""
    try:
        validation = validated(text)
    except ConfigError:
        event("rejected")
        return
    event("valid: built and routed")
    mesh: Mesh = validation.mesh
    router = Router(mesh)
    pipeline = Pipeline(Seeds(1), UpstreamClient())
    pipeline.set_mesh(mesh)
    pipeline.set_mesh(mesh)  # a reload of the same configuration keeps state
    rng = random.Random(1)
    for listener in ("mesh", "gateway:8080"):
        for request in REQUESTS:
            router.route(request, listener, rng)


def test_the_base_mesh_is_valid():
    validated(MESH)
    validated("---\n---\n")  # empty documents are an empty configuration, not an error


_chars = st.sampled_from(
    [*string.printable, "{", "}", "[", "]", ":", "-", "&", "*", "!", "|", ">", "é", "\t", "\x00"]
)


@FUZZ
@given(st.data())
def test_mutated_meshes_only_ever_raise_config_errors(data):
    text = MESH
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace", "swap-lines"]))
        if op == "swap-lines":
            lines = text.split("\n")
            i = data.draw(st.integers(0, len(lines) - 1))
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
            continue
        chunk = "".join(data.draw(st.lists(_chars, min_size=1, max_size=8)))
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + len(chunk) :]
        else:
            text = text[:pos] + chunk + text[pos + len(chunk) :]
    exercise(text)


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.text(max_size=10),
    st.sampled_from(["1s", "0s", "-1s", "250ms", "*", "reviews", "v1", "5xx", "127.0.0.1",
                     "STATIC", "DNS", "HTTP", "REGISTRY_ONLY", "abort", "pass", "99999"]),
)  # fmt: skip
_keys = st.sampled_from(
    ["hosts", "http", "route", "destination", "host", "subset", "match", "uri", "prefix",
     "exact", "headers", "fault", "delay", "fixedDelay", "abort", "httpStatus", "percentage",
     "value", "retries", "attempts", "perTryTimeout", "retryOn", "timeout", "trafficPolicy",
     "connectionPool", "tcp", "maxConnections", "outlierDetection", "subsets", "name", "labels",
     "endpoints", "address", "ports", "number", "protocol", "resolution", "servers", "port",
     "gateways", "mirror", "weight", "firstN", "sequence", "reset", "after", "hang", "defaults",
     "outboundTrafficPolicy", "mode", "egress", "workloadSelector", "rewrite", "delegate"]
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=25,
)
_kinds = st.sampled_from(
    ["VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry", "Gateway", "Sidecar",
     "UpstreamFault", "MeshConfig"]
)  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(_kinds, st.sampled_from(["a", "reviews", "mesh"]), _values), max_size=4))
def test_random_resource_sets_only_ever_raise_config_errors(docs):
    parts = [MESH]
    for kind, name, spec in docs:
        api = "chaoskit.dev/v1alpha1" if kind in ("UpstreamFault", "MeshConfig") else (
            "networking.istio.io/v1"
        )  # fmt: skip
        parts.append(json.dumps({"apiVersion": api, "kind": kind, "metadata": {"name": name},
                                 "spec": spec}))  # fmt: skip
    exercise("\n---\n".join(parts))


def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    body = "\n".join("    " + line for line in lines)
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        f"spec:\n  hosts: [reviews]\n  x:\n{body}\n"
    )


HOSTILE = {
    "alias bomb": alias_bomb(9),
    "deep nesting": "spec: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep mappings": "spec:\n" + "".join("  " * i + f"k{i}:\n" for i in range(2000)),
    "python tag": "apiVersion: v1\nkind: !!python/object/apply:os.system ['exit 3']\n",
    "custom tag": "apiVersion: !Ref x\nkind: VirtualService\n",
    "huge": "a: " + "x" * (17 * 1024 * 1024) + "\n",
    "binary": "\x00\x01\x02\xff\n" * 10,
    "duplicate keys": "kind: VirtualService\nkind: Gateway\n",
    "a path too long": "x" * 5000,
    "a path with NUL": "a\x00b",
    "just a scalar": "hello\n",
}


def test_hostile_yaml_is_a_config_error():
    for name, text in HOSTILE.items():
        try:
            validated(text)
        except ConfigError as e:
            assert e.issues, name
        else:
            raise AssertionError(f"{name}: accepted")
