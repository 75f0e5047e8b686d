"""Who is calling: the caller's workload, the way a sidecar knows it.

Without Kubernetes there is no pod to ask, so a caller names itself in the proxy credentials it
already sends: ``http://<workload>@127.0.0.1:15001`` (``Proxy-Authorization: Basic
base64(workload:)``). A tunnelled (HTTPS) request carries no ``Proxy-Authorization``, so the
name given on ``CONNECT`` is kept for the tunnel's life. The name selects the workload's
labels and namespace (``sourceLabels``, ``sourceNamespace``, Sidecar scope).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from mitmproxy import http

from chaoskit.config.mesh import Mesh
from chaoskit.routing.request import ANONYMOUS, Workload


def workload_from_proxy_auth(value: str | None) -> str:
    """The user name in ``Proxy-Authorization: Basic base64(user:)`` — the caller's identity."""
    if not value or not value.lower().startswith("basic "):
        return ""
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
    return decoded.partition(":")[0]


def workload(mesh: Mesh, name: str) -> Workload:
    """The workload ``name`` as the mesh declares it (a name alone when it declares none)."""
    if not name:
        return ANONYMOUS
    entry = mesh.workloads_by_name.get(name)
    if entry is None:
        return Workload(name=name)
    return Workload(name=name, namespace=entry.namespace, labels=dict(entry.labels))


class CallerIdentity:
    """The mitmproxy addon that remembers who opened each tunnel."""

    def __init__(self) -> None:
        #: client connection id → workload name given on CONNECT
        self._tunnels: dict[str, str] = {}

    def http_connect(self, flow: http.HTTPFlow) -> None:
        name = workload_from_proxy_auth(flow.request.headers.get("proxy-authorization"))
        if name:
            self._tunnels[flow.client_conn.id] = name

    def client_disconnected(self, client: Any) -> None:
        self._tunnels.pop(client.id, None)

    def name(self, client_id: str, proxy_authorization: str | None) -> str:
        """The caller's name: this request's credentials, else its tunnel's."""
        return workload_from_proxy_auth(proxy_authorization) or self._tunnels.get(client_id, "")
