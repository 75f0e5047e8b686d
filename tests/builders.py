"""YAML builders shared by the proxy tests (integration, reliability): small resources over each
suite's base mesh, which lives in its conftest.py."""

from __future__ import annotations

import textwrap


def fault(spec: str, name: str = "f") -> str:
    """An UpstreamFault with this ``spec`` (YAML, dedented)."""
    return (
        "apiVersion: chaoskit.dev/v1alpha1\nkind: UpstreamFault\n"
        f"metadata: {{name: {name}}}\nspec:\n" + textwrap.indent(textwrap.dedent(spec), "  ")
    )


def route_to(host: str, extra: str = "") -> str:
    """A VirtualService named after ``host`` with one route to it, plus ``extra`` route fields."""
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: {host}}}
        spec:
          hosts: [{host}]
          http:
          - route: [{{destination: {{host: {host}}}}}]
        """) + textwrap.indent(textwrap.dedent(extra), "    ")


def ratings_vs(extra: str = "") -> str:
    """The ratings VirtualService: one route to ``ratings``, plus ``extra`` route fields."""
    return route_to("ratings", extra)
