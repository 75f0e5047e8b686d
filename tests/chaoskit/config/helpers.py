"""YAML builders shared by the config tests."""

import textwrap

from chaoskit.config import Validation, load_text, validate

SERVICES = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9082}, labels: {version: v2}}
  - {address: 127.0.0.1, ports: {http: 9083}, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9084}, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""


def doc(
    kind: str,
    name: str,
    spec: str,
    *,
    api: str = "networking.istio.io/v1",
    namespace: str = "default",
) -> str:
    return (
        f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
        + "\n"
    )


def check(*texts: str) -> Validation:
    """Validate the base services plus the given documents, as one configuration."""
    return validate(
        [load_text(SERVICES, "services.yaml")]
        + [load_text(t, f"doc{i}.yaml") for i, t in enumerate(texts)]
    )


def messages(v: Validation, severity: str = "error") -> list[tuple[str, str]]:
    items = v.issues.errors if severity == "error" else v.issues.warnings
    return [(i.path, i.message) for i in items]
