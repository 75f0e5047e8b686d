"""YAML builders shared by the integration tests (the mesh itself is in conftest.py)."""

from __future__ import annotations

import textwrap


def fault(spec: str, name: str = "f") -> str:
    """An UpstreamFault with this ``spec`` (YAML, dedented)."""
    return (
        "apiVersion: chaoskit.dev/v1alpha1\nkind: UpstreamFault\n"
        f"metadata: {{name: {name}}}\nspec:\n" + textwrap.indent(textwrap.dedent(spec), "  ")
    )


def ratings_vs(extra: str = "") -> str:
    """The ratings VirtualService: one route to ``ratings``, plus ``extra`` route fields."""
    return textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: ratings}
        spec:
          hosts: [ratings]
          http:
          - route: [{destination: {host: ratings}}]
        """) + textwrap.indent(textwrap.dedent(extra), "    ")
