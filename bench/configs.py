"""The mesh configurations the benchmarks run, generated as Istio YAML.

- :func:`realistic_mesh` — what scenario 1 calls "a realistic config": one service ``web`` with
  two endpoints (the origin's two ports, labelled v1/v2); a DestinationRule with subsets,
  connection-pool limits and outlier detection; a VirtualService whose rules match on headers,
  URI prefixes and query parameters, with a weighted 80/20 default route, a route timeout and
  retries. Nothing in it injects a fault for ordinary traffic. Three more rules, selected by the
  header ``x-bench-fault``, carry the faults scenario 3 measures (100 ms delay, 1 s delay, 25 %
  abort); ordinary requests never match them.
- :func:`bodies_mesh` — one service ``bulk``, a ServiceEntry alone (Istio's defaults: no route
  or per-try timeout, 10 s connect timeout), for the large-body scenario: an upload of 60 MB
  must not be cut off by the realistic mesh's 1 s timeouts while twenty others are on the wire
  (the proxy before the body budget missed 1 s connect timeouts there: 503 UF).
- :func:`scale_mesh` — ``n`` services, each with a DestinationRule and a VirtualService of ten
  rules (nine that match on URI, headers, query parameters or method, then a catch-all with
  weights and retries), for scenario 4.
"""

from __future__ import annotations

#: The header that selects a fault rule of :func:`realistic_mesh`.
FAULT_HEADER = "x-bench-fault"
DELAY_100MS = "delay-100ms"
DELAY_1S = "delay-1s"
ABORT_25 = "abort-25"

_SERVICE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  location: MESH_INTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {port1}}}, labels: {{app: {name}, version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {port2}}}, labels: {{app: {name}, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {name}
  trafficPolicy:
    loadBalancer: {{simple: LEAST_REQUEST}}
    connectionPool:
      tcp: {{maxConnections: 1024, connectTimeout: 1s}}
      http: {{http1MaxPendingRequests: 1024, http2MaxRequests: 2048, maxRetries: 64}}
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""

_DEFAULT_RULE = """\
  - name: default
    route:
    - {{destination: {{host: {name}, subset: v1}}, weight: 80}}
    - {{destination: {{host: {name}, subset: v2}}, weight: 20}}
    timeout: 5s
    retries: {{attempts: 2, perTryTimeout: 1s, retryOn: "5xx,connect-failure,reset"}}
"""


def realistic_mesh(port1: int, port2: int, name: str = "web") -> str:
    """Scenario 1's configuration (see the module docstring); ``name`` is the service host."""
    fault_rules = f"""\
  - name: delay-100ms
    match:
    - headers: {{{FAULT_HEADER}: {{exact: {DELAY_100MS}}}}}
    fault: {{delay: {{fixedDelay: 100ms, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: {name}, subset: v1}}}}]
  - name: delay-1s
    match:
    - headers: {{{FAULT_HEADER}: {{exact: {DELAY_1S}}}}}
    fault: {{delay: {{fixedDelay: 1s, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: {name}, subset: v1}}}}]
    timeout: 30s
  - name: abort-25
    match:
    - headers: {{{FAULT_HEADER}: {{exact: {ABORT_25}}}}}
    fault: {{abort: {{httpStatus: 503, percentage: {{value: 25}}}}}}
    route: [{{destination: {{host: {name}, subset: v1}}}}]
"""
    virtual_service = f"""\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{name}]
  http:
  - name: jason
    match:
    - headers: {{end-user: {{exact: jason}}}}
    route: [{{destination: {{host: {name}, subset: v2}}}}]
  - name: admin
    match:
    - uri: {{prefix: /admin}}
    - queryParams: {{debug: {{exact: "1"}}}}
    route: [{{destination: {{host: {name}, subset: v2}}}}]
    retries: {{attempts: 3, perTryTimeout: 500ms, retryOn: "gateway-error,connect-failure"}}
{fault_rules}{_DEFAULT_RULE.format(name=name)}"""
    return _SERVICE.format(name=name, port1=port1, port2=port2) + virtual_service


def scale_host(i: int) -> str:
    return f"svc-{i:04d}"


def _scale_rules(name: str) -> str:
    rules = []
    for r in range(9):
        kind = r % 3
        if kind == 0:
            match = f"    - uri: {{prefix: /api/v{r}/}}\n      method: {{exact: POST}}\n"
        elif kind == 1:
            match = f"    - headers: {{x-tenant: {{exact: tenant-{r}}}}}\n"
        else:
            match = f"    - queryParams: {{variant: {{regex: 'b{r}-[a-z]+'}}}}\n"
        subset = "v2" if r % 2 else "v1"
        rules.append(
            f"  - name: r{r}\n    match:\n{match}"
            f"    route: [{{destination: {{host: {name}, subset: {subset}}}}}]\n"
        )
    return "".join(rules) + _DEFAULT_RULE.format(name=name)


def scale_mesh(n: int, port1: int, port2: int) -> str:
    """``n`` services with a DestinationRule and a ten-rule VirtualService each."""
    docs = []
    for i in range(n):
        name = scale_host(i)
        docs.append(_SERVICE.format(name=name, port1=port1, port2=port2))
        docs.append(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            f"metadata: {{name: {name}}}\nspec:\n  hosts: [{name}]\n  http:\n" + _scale_rules(name)
        )
    return "---\n".join(docs)


#: The service of :func:`bodies_mesh`.
BODIES_HOST = "bulk"


def bodies_mesh(port1: int, port2: int) -> str:
    """The large-body scenario's configuration (see the module docstring)."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {BODIES_HOST}}}
spec:
  hosts: [{BODIES_HOST}]
  location: MESH_INTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {port1}}}}}
  - {{address: 127.0.0.1, ports: {{http: {port2}}}}}
"""
