"""What routing needs to know about a request, independent of mitmproxy."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import parse_qsl


@dataclasses.dataclass(frozen=True, slots=True)
class Workload:
    """The caller's identity (a WorkloadEntry), for ``sourceLabels`` and Sidecar selection."""

    name: str
    namespace: str = "default"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


#: A client that did not name itself: no labels, namespace ``default``.
ANONYMOUS = Workload(name="", namespace="default")


@dataclasses.dataclass(frozen=True, slots=True)
class RequestInfo:
    """One downstream request as the router sees it.

    ``headers`` has lower-case names; repeated headers are joined with ``","`` as Envoy's
    header matcher sees them. ``port`` is the port the client addressed (from the authority, or
    80/443 by scheme), which selects the service port exactly as Istio's listener would.
    """

    method: str
    scheme: str
    authority: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    port: int = 80
    source: Workload = ANONYMOUS
    client_address: str = "127.0.0.1"

    @property
    def host(self) -> str:
        """The authority without port, lower-cased (``[::1]:80`` → ``::1``)."""
        return split_authority(self.authority, self.port)[0]

    def query_params(self) -> dict[str, str]:
        """First value of each query parameter; ``?key`` gives ``""`` (Envoy's semantics)."""
        out: dict[str, str] = {}
        for k, v in parse_qsl(self.query, keep_blank_values=True):
            out.setdefault(k, v)
        return out


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``"Reviews:9080"`` → ``("reviews", 9080)``; a missing or bad port gives the default."""
    a = authority.strip()
    if a.startswith("["):
        end = a.find("]")
        host, rest = a[1:end] if end > 0 else a[1:], a[end + 1 :] if end > 0 else ""
        port_text = rest[1:] if rest.startswith(":") else ""
    elif a.count(":") == 1:
        host, _, port_text = a.partition(":")
    else:
        host, port_text = a, ""
    port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else default_port
    return host.lower().rstrip("."), port
