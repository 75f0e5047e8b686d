"""The admin listener's configuration API: change a running proxy without touching its files.

- ``POST /config/apply``: a YAML or JSON body of one or more resources, validated exactly like
  a file (same messages, located in the pseudo file ``<admin:POST /config/apply>``) together
  with the configuration it joins, then swapped in atomically like a hot reload.
- ``POST /config/delete``: the same kind of body; the resources named there leave the layer.
- ``GET /config/applied``: what the API applied, as JSON.
- ``POST /config/reset``: forget everything the API applied, faults too (back to the files).
- ``/faults``: named faults, Toxiproxy-style (:mod:`chaoskit.config.named_faults`):
  ``GET /faults``, ``POST /faults`` (create; 409 when the name exists), ``GET|PUT|DELETE
  /faults/<name>`` (``PUT`` creates or replaces, idempotent), ``POST /faults/reset``. A fault
  becomes resources of the same runtime layer, so it is validated and swapped in like
  ``/config/apply``; every answer is JSON.

An invalid change is answered 400 with every message (text, or JSON with ``?format=json``)
and changes nothing. The work runs off the proxy's event loop (validation and a listener
change take milliseconds to seconds), one change at a time: the proxy's ``config_lock``, which
file reloads hold too, so an admin change and a reload never lose each other's change. The Host
and cross-site checks of :mod:`chaoskit.proxy.admin` apply to these endpoints as to the others.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractContextManager
from typing import Any, Protocol

from chaoskit.config import Validation
from chaoskit.config.fault_splice import missing_rule, to_json
from chaoskit.config.issues import Issue, Severity
from chaoskit.config.loader import LoadResult, load_text
from chaoskit.config.named_faults import Fault, conflict, parse_fault_body, unknown_host
from chaoskit.errors import ChaosKitError, ConfigError
from chaoskit.proxy.admin_changes import RuntimeLayer

PATHS = ("/config/apply", "/config/delete", "/config/applied", "/config/reset")
FAULTS = "/faults"

Answer = tuple[int, str, str]


def handles(path: str) -> bool:
    """Is ``path`` one of this module's endpoints?"""
    return path in PATHS or path == FAULTS or path.startswith(FAULTS + "/")


class LayeredProxy(Protocol):
    layer: RuntimeLayer

    @property
    def config_lock(self) -> AbstractContextManager[Any]: ...

    @property
    def validation(self) -> Validation: ...

    @property
    def base(self) -> list[LoadResult]: ...

    def set_layer(self, layer: RuntimeLayer) -> object: ...


def _refused(issues: list[Issue], as_json: bool) -> Answer:
    errors = [i for i in issues if i.severity is Severity.ERROR] or issues
    if as_json:
        body = json.dumps({"errors": [i.to_dict() for i in errors]}, indent=2) + "\n"
        return 400, "application/json", body
    return 400, "text/plain", "".join(f"{i}\n" for i in errors)


def _json(status: int, data: Any) -> Answer:
    return status, "application/json", json.dumps(data, indent=2) + "\n"


def _error(status: int, message: str, issues: list[Issue] | None = None) -> Answer:
    """Toxiproxy's error shape, ``{"error": ..., "status": ...}``, plus the located issues."""
    data: dict[str, Any] = {"error": message, "status": status}
    if issues is not None:
        data["errors"] = [i.to_dict() for i in issues]
    return _json(status, data)


def _ok(lines: list[str], as_json: bool) -> Answer:
    if as_json:
        return 200, "application/json", json.dumps({"results": lines}, indent=2) + "\n"
    return 200, "text/plain", "".join(f"{line}\n" for line in lines)


class AdminConfigApi:
    """Runs the configuration endpoints against a :class:`~chaoskit.proxy.api.Proxy`."""

    def __init__(self, proxy: LayeredProxy) -> None:
        self.proxy = proxy

    async def answer(self, method: str, path: str, body: bytes, as_json: bool) -> Answer:
        return await asyncio.to_thread(self.answer_now, method, path, body, as_json)

    def answer_now(self, method: str, path: str, body: bytes, as_json: bool) -> Answer:
        """Blocking: never call on the proxy's event loop (``set_layer`` waits on it)."""
        if path == FAULTS or path.startswith(FAULTS + "/"):
            with self.proxy.config_lock:
                return self._faults(method, path, body)
        if path == "/config/applied":
            if method != "GET":
                return 405, "text/plain", "use GET\n"
            applied = [
                {"kind": r.KIND, "namespace": r.namespace, "name": r.name}
                for r in self.proxy.layer.resources
            ]
            return 200, "application/json", json.dumps({"applied": applied}, indent=2) + "\n"
        if method != "POST":
            return 405, "text/plain", "use POST\n"
        with self.proxy.config_lock:
            if path == "/config/reset":
                return self._swap(RuntimeLayer(), ["runtime layer cleared"], as_json)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return 400, "text/plain", "the body must be UTF-8 YAML or JSON\n"
            loaded = load_text(text, f"<admin:POST {path}>")
            if loaded.issues.errors:
                return _refused(loaded.issues.sorted(), as_json)
            if not loaded.resources:
                return 400, "text/plain", "the body holds no resource\n"
            layer = self.proxy.layer
            if path == "/config/apply":
                new, lines = layer.applied(loaded.resources)
            else:
                new, lines, missing = layer.deleted(loaded.resources)
                if missing:
                    return 404, "text/plain", "".join(f"{m}\n" for m in missing)
            if all(line.endswith(" unchanged") for line in lines):
                return _ok(lines, as_json)  # nothing to swap
            return self._swap(new, lines, as_json)

    def _swap(self, layer: RuntimeLayer, lines: list[str], as_json: bool) -> Answer:
        try:
            self.proxy.set_layer(layer)
        except ConfigError as e:
            return _refused(e.issues, as_json)
        except ChaosKitError as e:  # a Gateway port that cannot be bound, the proxy stopping
            return 409, "text/plain", f"{e}\n"
        return _ok(lines, as_json)

    # -- /faults ---------------------------------------------------------------------------------

    def _faults(self, method: str, path: str, body: bytes) -> Answer:
        name = path[len(FAULTS) + 1 :] or None
        layer = self.proxy.layer
        if name is None:
            if method == "GET":
                targets = layer.targets(self.proxy.base)
                faults = [to_json(f, targets.get(f.name, [])) for f in layer.faults]
                return _json(200, {"faults": faults})
            if method == "POST":
                return self._put(body, None, create_only=True)
            return _error(405, "use GET or POST on /faults")
        if name == "reset":
            if method != "POST":
                return _error(405, "use POST on /faults/reset")
            if not layer.faults:
                return 204, "application/json", ""
            return self._swap_faults(layer.without_faults(), 204, None)
        if method == "GET":
            fault = layer.fault(name)
            if fault is None:
                return _error(404, f"fault {name!r} not found")
            return _json(200, to_json(fault, layer.targets(self.proxy.base).get(name, [])))
        if method == "PUT":
            return self._put(body, name, create_only=False)
        if method == "DELETE":
            if layer.fault(name) is None:
                return _error(404, f"fault {name!r} not found")
            return self._swap_faults(layer.without_faults(name), 204, None)
        return _error(405, f"use GET, PUT or DELETE on /faults/{name}")

    def _put(self, body: bytes, name: str | None, *, create_only: bool) -> Answer:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "the body must be UTF-8 YAML or JSON")
        where = f"<admin:POST {FAULTS}>" if name is None else f"<admin:PUT {FAULTS}/{name}>"
        fault, issues = parse_fault_body(text, where, name)
        if fault is None:
            return _refused_json(issues.sorted())
        layer = self.proxy.layer
        if create_only and layer.fault(fault.name) is not None:
            return _error(
                409, f"fault {fault.name!r} already exists; change it with PUT /faults/{fault.name}"
            )
        if fault.name == "reset":
            return _error(400, "a fault cannot be named 'reset' (POST /faults/reset removes all)")
        mesh = self.proxy.validation.mesh
        if (problem := unknown_host(fault, mesh)) is not None:
            return _refused_json(_issue(fault, "host", problem))
        if (problem := missing_rule(fault, mesh)) is not None:
            return _refused_json(_issue(fault, "routeName", problem))
        if (other := conflict(fault, layer.faults)) is not None:
            return _error(
                409,
                f"fault {other.name!r} already injects a route fault on {other.host} for the same "
                f"requests (a route rule holds one fault); change it with PUT /faults/{other.name} "
                "or remove it first",
            )
        new, verb = layer.with_fault(fault)
        status = 201 if verb == "created" else 200
        if verb == "unchanged":
            return _json(status, to_json(fault, new.targets(self.proxy.base).get(fault.name, [])))
        return self._swap_faults(new, status, fault.name)

    def _swap_faults(self, layer: RuntimeLayer, status: int, name: str | None) -> Answer:
        try:
            self.proxy.set_layer(layer)
        except ConfigError as e:
            return _refused_json(e.issues)
        except ChaosKitError as e:
            return _error(409, str(e))
        if name is None:
            return status, "application/json", ""
        fault = layer.fault(name)
        assert fault is not None
        return _json(status, to_json(fault, layer.targets(self.proxy.base).get(name, [])))


def _refused_json(issues: list[Issue]) -> Answer:
    errors = [i for i in issues if i.severity is Severity.ERROR] or issues
    return _error(400, "".join(f"{i}\n" for i in errors), errors)


def _issue(fault: Fault, path: str, problem: str) -> list[Issue]:
    return [Issue(Severity.ERROR, fault.loc(path), f"fault/{fault.name}", path, problem)]
