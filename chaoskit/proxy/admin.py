"""The admin listener, with Envoy's conventions: ``/ready``, ``/stats``, ``/clusters``,
``/config_dump``, ``POST /reset_counters``.

It is a mitmproxy addon placed before the core: flows that arrive on the admin listener are
answered here (the core skips flows that already have a response). It binds loopback only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from chaoskit.proxy.core import ChaosCore, protocol_violation

MAX_ADMIN_BODY = 64 * 1024


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "pattern"):  # compiled regex
        return value.pattern
    return str(value)


class ChaosAdmin:
    """Answers the admin listener; everything else passes to the core untouched."""

    def __init__(self, core: ChaosCore, is_admin: Callable[[http.HTTPFlow], bool]) -> None:
        self.core = core
        self.is_admin = is_admin

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or not self.is_admin(flow):
            return
        violation = protocol_violation(flow)  # the same codec rules as the mesh listener
        if violation is not None:
            headers = {**dict(violation.headers), "server": "envoy"}
            flow.response = http.Response.make(violation.status, violation.body, headers)
            return
        try:
            status, content_type, body = self.answer(flow.request)
        except Exception as e:  # the admin API must never take the proxy down
            status, content_type, body = 500, "text/plain", f"admin error: {type(e).__name__}\n"
        flow.response = http.Response.make(
            status, body.encode(), {"content-type": content_type, "server": "envoy"}
        )

    def answer(self, req: http.Request) -> tuple[int, str, str]:
        if len(req.raw_content or b"") > MAX_ADMIN_BODY:
            return 413, "text/plain", "request body too large\n"
        path, _, query = req.path.partition("?")
        as_json = "format=json" in query.split("&")
        pipeline = self.core.pipeline
        if req.method == "GET" and path == "/ready":
            return 200, "text/plain", "LIVE\n"
        if req.method == "GET" and path == "/stats":
            if as_json:
                stats = [{"name": k, "value": v} for k, v in pipeline.stats.snapshot().items()]
                return 200, "application/json", json.dumps({"stats": stats}, indent=2) + "\n"
            return 200, "text/plain; version=0.0.4", pipeline.stats.prometheus()
        if req.method == "GET" and path == "/clusters":
            return self._clusters(as_json)
        if req.method == "GET" and path == "/config_dump":
            mesh = pipeline.snapshot.mesh
            dump = {
                "seed": pipeline.seeds.seed,
                "defaults": _jsonable(mesh.defaults),
                "resources": [{"kind": r.KIND, **_jsonable(r)} for r in mesh.resources],
            }
            return 200, "application/json", json.dumps(dump, indent=2) + "\n"
        if path == "/reset_counters":
            if req.method != "POST":
                return 405, "text/plain", "use POST\n"
            pipeline.stats.reset()
            return 200, "text/plain", "OK\n"
        known = "/ready, /stats, /stats?format=json, /clusters, /config_dump, POST /reset_counters"
        return 404, "text/plain", f"unknown admin endpoint {path!r}; try {known}\n"

    def _clusters(self, as_json: bool) -> tuple[int, str, str]:
        clusters = self.core.pipeline.clusters.clusters()
        if as_json:
            data: list[dict[str, Any]] = [
                {
                    "name": c.name,
                    "source_workload": c.source or None,
                    "circuit_breakers": {**c.breaker.limits(), **c.breaker.snapshot()},
                    "hosts": [
                        {
                            "address": h.key,
                            "weight": h.weight,
                            "labels": dict(h.labels),
                            "active_requests": h.active_requests,
                            "health": c.host_health(h.key).lstrip("/"),
                            "outlier": (c.outlier.snapshot().get(h.key) if c.outlier else None),
                        }
                        for h in c.hosts
                    ],
                }
                for c in clusters
            ]
            return 200, "application/json", json.dumps({"clusters": data}, indent=2) + "\n"
        lines = []
        for c in clusters:
            for name, value in c.breaker.limits().items():
                lines.append(f"{c.label}::default_priority::{name}::{value}")
            for h in c.hosts:
                prefix = f"{c.label}::{h.key}"
                lines.append(f"{prefix}::weight::{h.weight}")
                lines.append(f"{prefix}::rq_active::{h.active_requests}")
                lines.append(f"{prefix}::health_flags::{c.host_health(h.key)}")
        return 200, "text/plain", "\n".join(lines) + ("\n" if lines else "")
