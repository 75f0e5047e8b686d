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


def service_entry(name: str, port: int, address: str = "127.0.0.1") -> str:
    """A ServiceEntry for host ``name`` on port 80 with one endpoint at ``address:port``
    (``resolution: DNS`` when ``address`` is a name)."""
    resolution = "STATIC" if address[0].isdigit() else "DNS"
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {name.split(".", maxsplit=1)[0]}}}
        spec:
          hosts: [{name}]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: {resolution}
          endpoints: [{{address: {address}, ports: {{http: {port}}}}}]
        """)


def tcp_service_entry(name: str, port: int, endpoint_port: int) -> str:
    """A ServiceEntry for host ``name`` with one plain-TCP port (``tcp-NAME``, for a
    ``--tcp`` / ``tcp_ports`` listener) and one endpoint at ``127.0.0.1:endpoint_port``."""
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {name}}}
        spec:
          hosts: [{name}]
          ports: [{{number: {port}, name: tcp-{name}, protocol: TCP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{tcp-{name}: {endpoint_port}}}}}]
        """)


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
