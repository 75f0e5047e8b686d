"""Builders shared by the fault tests: UpstreamFaults from YAML, attempts, requests."""

from __future__ import annotations

import random
import textwrap
from collections.abc import Mapping

from chaoskit.config.loader import load_text
from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.routing.request import RequestInfo

PAYMENTS = "payments.default.svc.cluster.local"


def doc(spec: str, name: str = "flaky", namespace: str = "default") -> str:
    return (
        "apiVersion: chaoskit.dev/v1alpha1\nkind: UpstreamFault\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
        + "\n"
    )


def faults(*docs: str, file: str = "faults.yaml") -> tuple[UpstreamFault, ...]:
    """Load ``docs`` (see :func:`doc`); no errors allowed (warnings such as "never fires" are)."""
    result = load_text("---\n".join(docs), file)
    assert not result.issues.errors, [str(i) for i in result.issues.errors]
    out = tuple(r for r in result.resources if isinstance(r, UpstreamFault))
    assert len(out) == len(docs)
    return out


def fault(spec: str, name: str = "flaky", namespace: str = "default") -> UpstreamFault:
    (f,) = faults(doc(spec, name, namespace))
    return f


def host(
    address: str = "127.0.0.1", port: int = 9082, labels: Mapping[str, str] | None = None
) -> UpstreamHost:
    return UpstreamHost(address, port, labels=dict(labels or {}))


def request(path: str = "/", headers: Mapping[str, str] | None = None) -> RequestInfo:
    return RequestInfo(
        method="GET",
        scheme="http",
        authority="payments:8080",
        path=path,
        headers=dict(headers or {}),
        port=8080,
    )


def rng(seed: int = 0) -> random.Random:
    return random.Random(seed)
