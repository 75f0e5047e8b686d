"""The admin listener, with Envoy's conventions: ``/ready``, ``/stats``, ``/clusters``,
``/config_dump``, ``POST /reset_counters``.

It is a mitmproxy addon placed before the core: flows that arrive on the admin listener are
answered here (the core skips flows that already have a response). It binds loopback only.

Binding loopback does not keep a browser out: a web page can make the browser send requests
to 127.0.0.1. Envoy's admin has no defence against that; chaoskit's has two, like other local
HTTP APIs (``kubectl proxy``, Vite, webpack-dev-server, Go's ``http.CrossOriginProtection``):

- **DNS rebinding.** A page on ``evil.test`` re-resolves its own name to 127.0.0.1 and reads the
  admin as "same origin" — with ``Host: evil.test:PORT``. Every request must name a loopback
  host (``localhost``, ``127.x.x.x``, ``[::1]``; any port, so an ``ssh -L`` or ``kubectl
  port-forward`` to another port still works); anything else is refused 403.
- **Cross-site requests** (CSRF). A page can send a "simple" POST it cannot read the answer
  of, which is enough to reset the counters a test asserts on. A state-changing request is
  refused 403 when the browser says it is not same-origin: ``Sec-Fetch-Site`` other than
  ``same-origin``/``none``, or, without it, an ``Origin`` that is not this listener's own.
  A request with neither header (``curl``, scripts, every HTTP library) is not from a browser
  and is served, so no token or custom header is needed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import http

from chaoskit.netaddr import is_loopback
from chaoskit.proxy.admin_api import AdminConfigApi, handles
from chaoskit.proxy.codec import protocol_violation
from chaoskit.proxy.core import ChaosCore

MAX_ADMIN_BODY = 64 * 1024

#: Methods that change nothing; every other method is checked for cross-site origin.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def loopback_host(authority: str) -> bool:
    """Does ``authority`` (a ``Host`` value: host and optional port) name a loopback host?

    Only names a DNS-rebinding page cannot make a browser send: ``localhost`` and loopback IP
    literals in their usual spelling. The port is not compared (a tunnel may change it, and
    a browser cannot put a loopback name in ``Host`` for an attacker's page anyway)."""
    host = authority.strip().lower()
    if host.startswith("["):
        host, end, port = host[1:].partition("]")
        if not end or (port and not port.startswith(":")):
            return False
        port = port[1:]
    else:
        host, _, port = host.partition(":")
    if port and not (port.isdigit() and len(port) <= 5):
        return False
    return host.rstrip(".") == "localhost" or is_loopback(host)


def cross_site(req: http.Request) -> bool:
    """Is this a browser request another site made? The Fetch Metadata header says so
    directly; older browsers send only ``Origin``, which must then be this listener's own
    (``http://`` + ``Host``). No header at all: not a browser."""
    site = req.headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() not in ("same-origin", "none")
    origin = req.headers.get("origin")
    if origin is None:
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return True
    host = req.host_header or ""
    return parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower()


def refusal(req: http.Request) -> str | None:
    """Why the admin refuses this request (403), or ``None`` to answer it."""
    names = req.headers.get_all("host") + ([req.authority] if req.authority else [])
    if not all(loopback_host(name) for name in names):
        return (
            "admin: the Host header must name this loopback listener "
            "(localhost, 127.0.0.1 or [::1]); refused as possible DNS rebinding\n"
        )
    if req.method.upper() not in SAFE_METHODS and cross_site(req):
        return "admin: cross-site request refused (Origin / Sec-Fetch-Site)\n"
    return None


def _respond(flow: http.HTTPFlow, status: int, content_type: str, body: str) -> None:
    flow.response = http.Response.make(
        status, body.encode(), {"content-type": content_type, "server": "envoy"}
    )


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

    def __init__(
        self,
        core: ChaosCore,
        is_admin: Callable[[http.HTTPFlow], bool],
        config: AdminConfigApi | None = None,
    ) -> None:
        self.core = core
        self.is_admin = is_admin
        #: the ``/config/*`` endpoints (:mod:`chaoskit.proxy.admin_api`), when there is a proxy
        self.config = config

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Synchronous for every flow; only a ``/config/*`` or ``/faults`` call returns a coroutine
        (mitmproxy awaits it), so the mesh's hot path never pays for one."""
        if flow.response is not None or not self.is_admin(flow):
            return None
        violation = protocol_violation(flow)  # the same codec rules as the mesh listener
        if violation is not None:
            headers = {**dict(violation.headers), "server": "envoy"}
            flow.response = http.Response.make(violation.status, violation.body, headers)
            return None
        try:
            refused = refusal(flow.request)
            path, _, query = flow.request.path.partition("?")
            if refused is not None:
                status, content_type, body = 403, "text/plain", refused
            elif self.config is not None and handles(path) and not self._too_big(flow):
                return self._config(flow, path, "format=json" in query.split("&"))
            else:
                status, content_type, body = self.answer(flow.request)
        except Exception as e:  # the admin API must never take the proxy down
            status, content_type, body = 500, "text/plain", f"admin error: {type(e).__name__}\n"
        _respond(flow, status, content_type, body)
        return None

    @staticmethod
    def _too_big(flow: http.HTTPFlow) -> bool:
        return len(flow.request.raw_content or b"") > MAX_ADMIN_BODY

    async def _config(self, flow: http.HTTPFlow, path: str, as_json: bool) -> None:
        assert self.config is not None
        req = flow.request
        try:
            answer = await self.config.answer(req.method, path, req.raw_content or b"", as_json)
        except Exception as e:  # the admin API must never take the proxy down
            answer = 500, "text/plain", f"admin error: {type(e).__name__}\n"
        _respond(flow, *answer)

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
        if req.method == "GET" and path == "/stats/prometheus":  # Envoy's path for scrapers
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
        known = (
            "/ready, /stats, /stats?format=json, /stats/prometheus, /clusters, /config_dump, "
            "POST /reset_counters, POST /config/apply, POST /config/delete, GET /config/applied, "
            "POST /config/reset, GET|POST /faults, GET|PUT|DELETE /faults/<name>, "
            "POST /faults/reset"
        )
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
