"""Config-scale timings in a fresh process: ``python -m bench.scaleworker SPEC_JSON``.

A fresh interpreter per configuration size, like a ``chaoskit proxy`` or ``chaoskit validate``
starting up, so the garbage collector sees only what loading that configuration creates. The
spec names the YAML file, the host to route and the repeats. Printed JSON:

- ``load_validate_s``: ``chaoskit.config.validate_paths`` (read, parse, build, check), per repeat;
- ``load_validate_gc_off_s``: the same with the cyclic garbage collector disabled during the
  call (an experiment: how much of the time is collection passes over the growing heap);
- ``router_build_s``: ``Router(mesh)``;
- ``lookup_us``: one ``Router.route`` call for a request matching the first rule and one that
  falls through nine rules to the catch-all (medians over batches).
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
from typing import Any


def _lookup_us(router: Any, req: Any, batch: int, batches: int) -> float:
    rng = random.Random(1)
    per: list[float] = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(batch):
            router.route(req, "mesh", rng)
        per.append((time.perf_counter() - t0) / batch * 1e6)
    return round(statistics.median(per), 2)


def main(spec: dict[str, Any]) -> dict[str, Any]:
    from chaoskit.config import validate_paths  # noqa: PLC0415 - timed after the imports
    from chaoskit.routing import Forward, RequestInfo, Router  # noqa: PLC0415

    path = spec["path"]
    repeats = int(spec.get("repeats", 3))
    host = spec["host"]
    first_rule = spec.get("first_rule_request", {})
    load: list[float] = []
    load_gc_off: list[float] = []
    build: list[float] = []
    mesh = None
    resources = 0
    for _ in range(repeats):
        mesh = None
        gc.collect()
        t0 = time.perf_counter()
        v = validate_paths([path])
        load.append(time.perf_counter() - t0)
        if not v.ok:
            return {"error": "\n".join(str(i) for i in v.issues.errors[:5])}
        resources = len(v.resources)
        del v
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            v = validate_paths([path])
            load_gc_off.append(time.perf_counter() - t0)
        finally:
            gc.enable()
        mesh = v.mesh
        t0 = time.perf_counter()
        router = Router(mesh)
        build.append(time.perf_counter() - t0)
    headers = {"host": host, "user-agent": "bench/1", "accept": "*/*"}
    last = RequestInfo("GET", "http", host, "/", headers=headers, port=80)
    first = RequestInfo(
        first_rule.get("method", "GET"), "http", host, first_rule.get("path", "/"),
        headers={**headers, **first_rule.get("headers", {})}, port=80,
    )  # fmt: skip
    decision = router.route(last, "mesh", random.Random(1))
    if not isinstance(decision, Forward):
        return {"error": f"route lookup did not forward: {decision!r}"}
    first_decision = router.route(first, "mesh", random.Random(1))
    batch, batches = int(spec.get("batch", 2000)), int(spec.get("batches", 9))
    return {
        "resources": resources,
        "load_validate_s": [round(x, 4) for x in load],
        "load_validate_gc_off_s": [round(x, 4) for x in load_gc_off],
        "router_build_s": [round(x, 4) for x in build],
        "lookup_us_last_rule": _lookup_us(router, last, batch, batches),
        "lookup_us_first_rule": _lookup_us(router, first, batch, batches),
        "last_rule_route": decision.route_name,
        "first_rule_route": getattr(first_decision, "route_name", None),
    }


if __name__ == "__main__":
    json.dump(main(json.loads(sys.argv[1])), sys.stdout)
