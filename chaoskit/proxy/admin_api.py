"""The admin listener's configuration API: change a running proxy without touching its files.

- ``POST /config/apply``: a YAML or JSON body of one or more resources, validated exactly like
  a file (same messages, located in the pseudo file ``<admin:POST /config/apply>``) together
  with the configuration it joins, then swapped in atomically like a hot reload.
- ``POST /config/delete``: the same kind of body; the resources named there leave the layer.
- ``GET /config/applied``: what the API applied, as JSON.
- ``POST /config/reset``: forget everything the API applied (back to the files).

An invalid change is answered 400 with every message (text, or JSON with ``?format=json``)
and changes nothing. The work runs off the proxy's event loop (validation and a listener
change take milliseconds to seconds), one change at a time. The Host and cross-site checks of
:mod:`chaoskit.proxy.admin` apply to these endpoints as to the others.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Protocol

from chaoskit.config.issues import Issue, Severity
from chaoskit.config.loader import load_text
from chaoskit.errors import ChaosKitError, ConfigError
from chaoskit.proxy.admin_changes import RuntimeLayer

PATHS = ("/config/apply", "/config/delete", "/config/applied", "/config/reset")

Answer = tuple[int, str, str]


class LayeredProxy(Protocol):
    layer: RuntimeLayer

    def set_layer(self, layer: RuntimeLayer) -> object: ...


def _refused(issues: list[Issue], as_json: bool) -> Answer:
    errors = [i for i in issues if i.severity is Severity.ERROR] or issues
    if as_json:
        body = json.dumps({"errors": [i.to_dict() for i in errors]}, indent=2) + "\n"
        return 400, "application/json", body
    return 400, "text/plain", "".join(f"{i}\n" for i in errors)


def _ok(lines: list[str], as_json: bool) -> Answer:
    if as_json:
        return 200, "application/json", json.dumps({"results": lines}, indent=2) + "\n"
    return 200, "text/plain", "".join(f"{line}\n" for line in lines)


class AdminConfigApi:
    """Runs the configuration endpoints against a :class:`~chaoskit.proxy.api.Proxy`."""

    def __init__(self, proxy: LayeredProxy) -> None:
        self.proxy = proxy
        self._lock = threading.Lock()

    async def answer(self, method: str, path: str, body: bytes, as_json: bool) -> Answer:
        return await asyncio.to_thread(self.answer_now, method, path, body, as_json)

    def answer_now(self, method: str, path: str, body: bytes, as_json: bool) -> Answer:
        """Blocking: never call on the proxy's event loop (``set_layer`` waits on it)."""
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
        with self._lock:
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
