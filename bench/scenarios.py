"""The six measurements of issue 7 (plus an optional profile), each a function of a Bench.

Every comparison runs side by side in the same invocation: the configurations take turns
(the order rotates every round), and results are medians over the rounds, with min/max and
paired ratios per round.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import configs
from bench.load import Endpoint
from bench.procs import (
    BenchError,
    cpu_seconds,
    fd_kinds,
    open_fds,
    pause,
    peak_rss_mb,
    rss_mb,
    run_bounded,
    sampling,
)
from bench.pytest_suite import write_suites
from bench.runner import Bench
from bench.stats import binomial_interval, median, percentile, ratio, spread

THROUGHPUT_TARGETS = ("direct", "mitmdump", "lean-master", "chaoskit", "mitmdump-s")


def _rotate(items: tuple[str, ...] | list[str], r: int) -> list[str]:
    k = r % len(items)
    return [*items[k:], *items[:k]]


def _pause_between() -> None:
    """Let sockets of the previous run close (TIME_WAIT aside) before the next one."""
    pause(0.3)


# -- 1. throughput and CPU per request -----------------------------------------------------------


def throughput(b: Bench) -> dict[str, Any]:
    p = b.plan
    targets = THROUGHPUT_TARGETS
    servers = {s.name: s for s in b.ensure(*targets)}
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in targets}
    for r in range(p.tp_repeats):
        for name in _rotate(targets, r):
            s = servers[name]
            res = b.load.saturate(
                s.endpoint, conns=50, seconds=p.tp_seconds, warmup=p.tp_warmup, pid=s.pid
            )
            res["round"] = r
            runs[name].append(res)
            _pause_between()
    out: dict[str, Any] = {"connections": 50, "seconds": p.tp_seconds, "rounds": p.tp_repeats}
    table = {}
    for name, rs in runs.items():
        s = servers[name]
        table[name] = {
            "rps": spread([x["rps"] for x in rs], 1),
            "cpu_ms_per_req": spread([x.get("cpu_ms_per_req") for x in rs], 4),
            "cpu_util": spread([x.get("cpu_util") for x in rs], 3),
            "p50_ms": spread([x["latency_ms"].get("p50") for x in rs], 2),
            "p99_ms": spread([x["latency_ms"].get("p99") for x in rs], 2),
            "errors": sum(x["errors"] for x in rs),
            "non_2xx": sum(x["non_2xx"] for x in rs),
            "rss_mb": round(rss_mb(s.pid) or 0, 1) if s.pid else None,
            "peak_rss_mb": round(peak_rss_mb(s.pid) or 0, 1) if s.pid else None,
        }
    out["results"] = table
    out["runs"] = runs

    def paired(a: str, c: str) -> dict[str, Any]:
        per_round = [ratio(x["rps"], y["rps"]) for x, y in zip(runs[a], runs[c], strict=True)]
        # CPU-normalised: requests per CPU-second, a's over c's (steadier than req/s when
        # other processes take CPU time from the proxy core)
        cpu = [
            ratio(y.get("cpu_ms_per_req"), x.get("cpu_ms_per_req"))
            for x, y in zip(runs[a], runs[c], strict=True)
        ]
        return {
            "ratio_of_medians": ratio(table[a]["rps"]["median"], table[c]["rps"]["median"]),
            "per_round": spread([v for v in per_round if v is not None], 3),
            "per_cpu_second": spread([v for v in cpu if v is not None], 3),
        }

    out["ratios"] = {
        "chaoskit/mitmdump": paired("chaoskit", "mitmdump"),
        "lean-master/mitmdump": paired("lean-master", "mitmdump"),
        "chaoskit/lean-master": paired("chaoskit", "lean-master"),
        "mitmdump-s/mitmdump": paired("mitmdump-s", "mitmdump"),
        "chaoskit/mitmdump-s": paired("chaoskit", "mitmdump-s"),
    }
    return out


# -- 2. added latency at light load ---------------------------------------------------------------

LATENCY_TARGETS = ("direct", "chaoskit", "mitmdump", "lean-master", "mitmdump-s")


def light_latency(b: Bench) -> dict[str, Any]:
    names = LATENCY_TARGETS
    servers = b.ensure(*names)
    eps = [s.endpoint for s in servers]
    res = b.load.python_load({"mode": "interleave", "rate": 10, "count": b.plan.light_count}, eps)
    per = res["targets"]
    samples = {name: per[name].pop("samples_ms") for name in per}
    out: dict[str, Any] = {
        "rate_per_target": 10,
        "requests_per_target": b.plan.light_count,
        "targets": per,
    }
    deltas: dict[str, Any] = {}
    block = 100
    for name in names[1:]:
        d = {}
        for q in ("p50", "p90", "p99"):
            a, c = per[name]["latency_ms"].get(q), per["direct"]["latency_ms"].get(q)
            d[q] = round(a - c, 3) if a is not None and c is not None else None
        # spread: the p50 difference in blocks of 100 consecutive samples
        blocks = []
        for i in range(0, len(samples[name]) - block + 1, block):
            x = percentile(samples[name][i : i + block], 50)
            y = percentile(samples["direct"][i : i + block], 50)
            if x is not None and y is not None:
                blocks.append(x - y)
        d["p50_by_block_of_100"] = spread(blocks, 3)
        deltas[name] = d
    out["added_ms"] = deltas
    return out


# -- 3. fault fidelity --------------------------------------------------------------------------


def _fault_ep(ep: Endpoint, kind: str) -> Endpoint:
    return ep.with_headers(f"{ep.name}+{kind}", (configs.FAULT_HEADER, kind))


def fault_fidelity(b: Bench) -> dict[str, Any]:
    p = b.plan
    (chaoskit,) = b.ensure("chaoskit")
    delay = _fault_ep(chaoskit.endpoint, configs.DELAY_100MS)
    out: dict[str, Any] = {}

    # (a) 100 ms at 10 req/s
    res = b.load.python_load(
        {"mode": "rate", "rate": 10, "count": p.delay_count, "conns": 4}, [delay]
    )
    out["delay_100ms_at_10rps"] = {
        "requests": res["requests"],
        "errors": res["errors"],
        "statuses": res["statuses"],
        "latency_ms": res["latency_ms"],
        "service_latency_ms": res["service_latency_ms"],
    }

    # (b) 100 ms under load: at 80 % (and in full mode 50 %) of the no-fault saturation,
    # side by side with the same rate without a fault
    tp = b.results.get("throughput", {}).get("results", {}).get("chaoskit", {})
    sat = tp.get("rps", {}).get("median")
    if not sat:
        sat = b.load.saturate(chaoskit.endpoint, seconds=max(p.tp_seconds, 1), warmup=0.5)["rps"]
    for fraction in p.sat_fractions:
        target_rate = round(fraction * sat, 1)
        runs: dict[str, list[dict[str, Any]]] = {"delay-100ms": [], "no-fault": []}
        for r in range(p.sat_repeats):
            for kind in _rotate(["delay-100ms", "no-fault"], r):
                ep = delay if kind == "delay-100ms" else chaoskit.endpoint
                spec = {
                    "mode": "rate",
                    "rate": target_rate,
                    "duration": p.sat_seconds,
                    "conns": 512,
                    "timeout": 30,
                    "warmup": p.tp_warmup,  # answers not counted; connections opened first
                }
                cpu0 = cpu_seconds(chaoskit.pid) if chaoskit.pid else None
                res = b.load.python_load(spec, [ep])
                cpu1 = cpu_seconds(chaoskit.pid) if chaoskit.pid else None
                if cpu0 is not None and cpu1 is not None and res["requests"]:
                    res["cpu_ms_per_req"] = round((cpu1 - cpu0) * 1000 / res["requests"], 4)
                runs[kind].append(res)
                _pause_between()
        out[f"at_{round(fraction * 100)}pct_saturation"] = {
            "fraction": fraction,
            "saturation_rps": sat,
            "offered_rps": target_rate,
            "warmup_s": p.tp_warmup,
            **{
                kind: {
                    "achieved_rps": spread([x["achieved_rps"] for x in rs], 1),
                    "drain_s": spread([x["drain_s"] for x in rs], 3),
                    "p50_ms": spread([x["latency_ms"].get("p50") for x in rs], 2),
                    "p99_ms": spread([x["latency_ms"].get("p99") for x in rs], 2),
                    "service_p50_ms": spread([x["service_latency_ms"].get("p50") for x in rs], 2),
                    "service_p99_ms": spread([x["service_latency_ms"].get("p99") for x in rs], 2),
                    "errors": sum(x["errors"] for x in rs),
                    "connections": max(x["connections"] for x in rs),
                    "cpu_ms_per_req": spread([x.get("cpu_ms_per_req") for x in rs], 4),
                }
                for kind, rs in runs.items()
            },
        }

    # (c) 500 concurrent 1 s delays
    burst_ep = _fault_ep(chaoskit.endpoint, configs.DELAY_1S)
    bursts = []
    for _ in range(p.burst_repeats):
        bursts.append(
            b.load.python_load(
                {"mode": "burst", "conns": p.burst_conns, "timeout": 60}, [burst_ep], timeout=120
            )
        )
        pause(1.0)
    out["concurrent_1s_delays"] = {
        "connections": p.burst_conns,
        "wall_s": spread([x["wall_s"] for x in bursts], 3),
        "p50_ms": spread([x["latency_ms"].get("p50") for x in bursts], 1),
        "max_ms": spread([x["latency_ms"].get("max") for x in bursts], 1),
        "errors": sum(x["errors"] for x in bursts),
        "statuses": [x["statuses"] for x in bursts],
    }

    # (d) 25 % abort: rate against the binomial interval, and the same seed again
    fa, fb, fc = b.ensure("fidelity-a", "fidelity-b", "fidelity-c")
    seqs = {}
    for s in (fa, fb, fc):
        ep = _fault_ep(s.endpoint, configs.ABORT_25)
        res = b.load.python_load({"mode": "sequence", "count": p.abort_count}, [ep])
        seqs[s.name] = res
    n = p.abort_count
    lo, hi = binomial_interval(n, 0.25, 0.999)
    a, bb, c = (seqs[k]["statuses"] for k in ("fidelity-a", "fidelity-b", "fidelity-c"))
    aborted = a.count(503)
    other = [x for x in a if x not in (200, 503)]
    out["abort_25pct"] = {
        "requests": n,
        "aborted": aborted,
        "observed_rate": round(aborted / n, 4),
        "interval_999": [lo, hi],
        "interval_rate": [round(lo / n, 4), round(hi / n, 4)],
        "inside": lo <= aborted <= hi,
        "unexpected_statuses": len(other),
        "same_seed_identical": a == bb,
        "same_seed_mismatches": sum(1 for x, y in zip(a, bb, strict=True) if x != y),
        "other_seed_aborted": c.count(503),
        "other_seed_inside": lo <= c.count(503) <= hi,
        "other_seed_differs": a != c,
        "seconds": seqs["fidelity-a"]["seconds"],
        "connections": seqs["fidelity-a"]["connections"],
    }
    b.stop("fidelity-a", "fidelity-b", "fidelity-c")
    return out


# -- 4. scale of config ----------------------------------------------------------------------


def scale(b: Bench) -> dict[str, Any]:
    p = b.plan
    o1, o2 = b.origin_ports
    sizes = p.scale_sizes
    out: dict[str, Any] = {"sizes": list(sizes), "rules_per_virtual_service": 10}
    offline: dict[str, Any] = {}
    for n in sizes:
        path = b.run_dir / f"scale-{n}.yaml"
        path.write_text(configs.scale_mesh(n, o1, o2))
        host = configs.scale_host(n // 2)
        spec = {
            "path": str(path),
            "host": host,
            "repeats": p.scale_validate_repeats,
            "first_rule_request": {"method": "POST", "path": "/api/v0/orders"},
        }
        argv = [
            *b.place.prefix(b.place.proxy), b.load.python, "-m", "bench.scaleworker",
            json.dumps(spec),
        ]  # fmt: skip
        res = run_bounded(argv, timeout=600, env=b.env)
        if res.returncode != 0:
            raise BenchError(f"bench.scaleworker failed:\n{res.stderr[-2000:]}")
        data = json.loads(res.stdout)
        if "error" in data:
            raise BenchError(f"scale {n}: {data['error']}")
        data["load_validate"] = spread(data["load_validate_s"], 4)
        data["load_validate_gc_off"] = spread(data["load_validate_gc_off_s"], 4)
        data["router_build"] = spread(data["router_build_s"], 4)
        offline[str(n)] = data
    out["offline"] = offline

    names = [f"scale-{n}" for n in sizes]
    servers = {s.name: s for s in b.ensure(*names, timeout=180)}
    out["proxy_ready_s"] = {n: round(servers[n].ready_s, 2) for n in names}
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(p.scale_repeats):
        for name in _rotate(names, r):
            s = servers[name]
            runs[name].append(
                b.load.saturate(
                    s.endpoint, seconds=p.scale_seconds, warmup=min(p.tp_warmup, 2), pid=s.pid
                )
            )
            _pause_between()
    base = names[0]
    tp: dict[str, Any] = {}
    for name in names:
        per_round = [ratio(x["rps"], y["rps"]) for x, y in zip(runs[name], runs[base], strict=True)]
        tp[name] = {
            "rps": spread([x["rps"] for x in runs[name]], 1),
            "cpu_ms_per_req": spread([x.get("cpu_ms_per_req") for x in runs[name]], 4),
            "errors": sum(x["errors"] + x["non_2xx"] for x in runs[name]),
            "vs_smallest_per_round": spread([v for v in per_round if v is not None], 3),
            "vs_smallest_ratio_of_medians": ratio(
                median([x["rps"] for x in runs[name]]), median([x["rps"] for x in runs[base]])
            ),
            "rss_mb": round(rss_mb(s.pid) or 0, 1) if (s := servers[name]).pid else None,
        }
    out["throughput"] = tp
    b.stop(*names)
    return out


# -- 5. pytest ---------------------------------------------------------------------------------


def _pytest_run(b: Bench, folder: Path, kind: str, timings: Path) -> dict[str, Any]:
    env = {
        **b.env,
        "BENCH_MESH": str(b.mesh_file),
        "BENCH_ORIGIN": f"http://127.0.0.1:{b.origin_ports[0]}/",
        "BENCH_TIMINGS": str(timings),
    }
    argv = [*b.place.prefix(b.place.proxy), b.load.python, "-m", "pytest", "-x"]
    if kind == "plain":
        argv += ["-p", "no:chaoskit"]
    t0 = time.perf_counter()
    res = run_bounded(argv, timeout=600, cwd=folder, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise BenchError(f"pytest in {folder} failed:\n{res.stdout[-3000:]}\n{res.stderr[-2000:]}")
    data: dict[str, Any] = json.loads(timings.read_text())
    data["wall_s"] = wall
    return data


def pytest_overhead(b: Bench) -> dict[str, Any]:
    p = b.plan
    b.ensure("direct")
    suites = write_suites(b.run_dir / "pytest-suites", p.pytest_tests)
    n = p.pytest_tests
    order = [f"chaos-{n}", f"plain-{n}", "chaos-1", "plain-1"]
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in order}
    for r in range(p.pytest_repeats):
        for key in _rotate(order, r):
            kind = key.split("-")[0]
            timings = b.run_dir / f"pytest-{key}-{r}.json"
            runs[key].append(_pytest_run(b, suites[key], kind, timings))

    def walls(key: str) -> dict[str, Any]:
        return spread([x["wall_s"] for x in runs[key]], 3)

    chaos_runs = runs[f"chaos-{n}"]
    setups: list[float] = []
    applies: list[float] = []
    teardowns: list[float] = []
    starts: list[float] = []
    for x in [*chaos_runs, *runs["chaos-1"]]:
        starts += x["fixtures"].get("chaos_proxy", [])
    for x in chaos_runs:
        setups += x["fixtures"].get("chaos", [])
        applies += x["apply"]
        # the last teardown also stops the session's proxy: leave it out
        teardowns += x["phases"]["teardown"][:-1]
    per_test_total = [
        s + a + t
        for x in chaos_runs
        for s, a, t in zip(
            x["fixtures"].get("chaos", [])[:-1], x["apply"][:-1], x["phases"]["teardown"][:-1],
            strict=False,
        )
    ]  # fmt: skip

    def ms(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "median": round(statistics.median(values) * 1000, 3),
            "p99": round((percentile(values, 99) or 0) * 1000, 3),
            "max": round(max(values) * 1000, 3),
        }

    wall_chaos, wall_plain = walls(f"chaos-{n}"), walls(f"plain-{n}")
    w1c, w1p = walls("chaos-1"), walls("plain-1")
    per_round = [
        (c["wall_s"] - q["wall_s"]) / n
        for c, q in zip(runs[f"chaos-{n}"], runs[f"plain-{n}"], strict=True)
    ]
    return {
        "tests": n,
        "rounds": p.pytest_repeats,
        "wall_s": {
            f"chaos_{n}": wall_chaos,
            f"plain_{n}": wall_plain,
            "chaos_1": w1c,
            "plain_1": w1p,
        },
        "session_startup_s": {
            "chaos_proxy_fixture": spread(starts, 3),
            "wall_difference_1_test": round(w1c["median"] - w1p["median"], 3)
            if w1c["median"] is not None and w1p["median"] is not None
            else None,
        },
        "per_test_ms": {
            "chaos_fixture_setup": ms(setups),
            "apply_fault": ms(applies),
            "teardown_reset": ms(teardowns),
            "setup_apply_teardown": ms(per_test_total),
        },
        "suite_overhead_per_test_ms": spread([x * 1000 for x in per_round], 3),
        "suite_overhead_excl_startup_per_test_ms": round(
            (
                (wall_chaos["median"] - wall_plain["median"])
                - ((w1c["median"] or 0) - (w1p["median"] or 0))
            )
            * 1000
            / max(n - 1, 1),
            3,
        )
        if wall_chaos["median"] is not None and wall_plain["median"] is not None
        else None,
    }


# -- 6. memory --------------------------------------------------------------------------------


def memory(b: Bench) -> dict[str, Any]:
    p = b.plan
    (srv,) = b.ensure("memory")
    pid = srv.pid
    assert pid is not None
    ep = srv.endpoint
    ports = b.origin_ports

    def fds() -> dict[str, Any]:
        kinds = fd_kinds(pid, ports) or {}
        total = open_fds(pid)
        return {
            "total": total,
            **kinds,
            # what the issue means by growth: everything but the upstream keep-alive pool,
            # which aiohttp keeps (bounded by the peak concurrency) and closes after 30 s idle
            "excluding_upstream_pool": (total - kinds["upstream_pool"])
            if total is not None and kinds
            else total,
        }

    start: dict[str, Any] = {"rss_mb": rss_mb(pid), "fds": fds()}
    # warm up: fill pools, caches and the record ring (10,000 records by default)
    done = 0
    rps = 0.0
    while done < p.memory_warmup:
        res = b.load.saturate(ep, seconds=max(1.0, min(5.0, p.memory_warmup / 800)), warmup=0)
        done += res["requests"]
        rps = res["rps"]
    pause(1.5)  # let the client connections close
    before: dict[str, Any] = {"rss_mb": rss_mb(pid), "fds": fds(), "requests_so_far": done}
    per_segment = p.memory_requests / p.memory_segments
    seconds = max(1.0, per_segment / max(rps, 50))
    samples: list[dict[str, Any]] = [{"requests": 0, "rss_mb": before["rss_mb"]}]
    total = 0
    deadline = time.monotonic() + max(120.0, 5 * p.memory_requests / max(rps, 50))
    while total < p.memory_requests and time.monotonic() < deadline:
        res = b.load.saturate(ep, seconds=seconds, warmup=0)
        total += res["requests"]
        samples.append({"requests": total, "rss_mb": rss_mb(pid)})
    pause(1.5)
    after: dict[str, Any] = {"rss_mb": rss_mb(pid), "fds": fds(), "peak_rss_mb": peak_rss_mb(pid)}
    idle: dict[str, Any] | None = None
    if p.memory_idle_wait:
        pause(p.memory_idle_wait)  # past aiohttp's 30 s keep-alive: the pool drains
        idle = {"seconds": p.memory_idle_wait, "rss_mb": rss_mb(pid), "fds": fds()}
    rss: list[float] = [s["rss_mb"] for s in samples if s["rss_mb"] is not None]
    growth = (
        round(after["rss_mb"] - before["rss_mb"], 2)
        if after["rss_mb"] is not None and before["rss_mb"] is not None
        else None
    )
    a_fd, b_fd = after["fds"]["excluding_upstream_pool"], before["fds"]["excluding_upstream_pool"]
    return {
        "warmup_requests": done,
        "requests": total,
        "at_start": start,
        "after_warmup": before,
        "after": after,
        "after_idle": idle,
        "rss_growth_mb": growth,
        "rss_max_minus_warm_mb": round(max(rss) - rss[0], 2) if rss else None,
        "fd_growth": a_fd - b_fd if a_fd is not None and b_fd is not None else None,
        "samples": [{**s, "rss_mb": round(s["rss_mb"] or 0, 2)} for s in samples],
    }


# -- 7. large bodies ---------------------------------------------------------------------------


def large_bodies(b: Bench) -> dict[str, Any]:
    """Concurrent large uploads through a fresh ``chaoskit proxy`` (issue 12 item 8: twenty
    60 MB uploads took it to 2 GB, held until the cyclic collector ran).

    Two bursts, each of uploads started at once on new connections: ``bodies_within`` that fit
    in the default body budget together (all answered: the memory must come back when they
    end), then ``bodies_over`` that do not (the budget refuses some: the peak must stay
    bounded). Per burst: the statuses, the peak RSS while it ran (sampled every 20 ms; the
    kernel's high-water mark, which covers the whole life of the process, beside it) and the
    RSS ``bodies_after_s`` after the last answer."""
    p = b.plan
    (srv,) = b.ensure("bodies")
    pid = srv.pid
    assert pid is not None
    size = p.bodies_mb * 2**20
    out: dict[str, Any] = {
        "body_mb": p.bodies_mb,
        "after_s": p.bodies_after_s,
        "rss_idle_mb": _mb(rss_mb(pid)),
        "bursts": {},
    }
    for name, conns in (("within_budget", p.bodies_within), ("over_budget", p.bodies_over)):
        before = rss_mb(pid)
        cpu0 = cpu_seconds(pid)
        spec = {"mode": "upload", "conns": conns, "body_bytes": size, "timeout": 120}
        with sampling(pid, every=0.02) as sampled:
            res = b.load.python_load(spec, [srv.endpoint], timeout=300)
        cpu1 = cpu_seconds(pid)
        pause(p.bodies_after_s)
        out["bursts"][name] = {
            "uploads": conns,
            "offered_mb": conns * p.bodies_mb,
            "statuses": res["statuses"],
            "errors": res["errors"],
            "error_kinds": res["error_kinds"],
            "wall_s": res["wall_s"],
            "rss_before_mb": _mb(before),
            "peak_rss_mb": sampled["peak_rss_mb"],
            "high_water_mb": _mb(peak_rss_mb(pid)),
            "rss_after_mb": _mb(rss_mb(pid)),
            "cpu_s": round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None,
        }
    b.stop("bodies")
    return out


def _mb(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


# -- profile (optional) -----------------------------------------------------------------------


_LINE = re.compile(r":\d+\)$")


def _aggregate(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function (line numbers dropped) and self time per
    package, from py-spy's raw (collapsed-stack) output, over the event-loop thread's samples
    (the proxy's work; other threads only wait)."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    by_pkg: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if "run_forever" not in stack:
            continue  # not the event-loop thread (the CLI's file watcher sleeping, py-spy's view)
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        leaf = frames[-1]
        self_t[leaf] = self_t.get(leaf, 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
        by_pkg[_package(leaf)] = by_pkg.get(_package(leaf), 0) + n

    def pct(d: dict[str, int], k: int) -> list[list[Any]]:
        items = sorted(d.items(), key=lambda kv: -kv[1])[:k]
        return [[name, round(100 * c / total, 1)] for name, c in items]

    ours = {k: v for k, v in incl.items() if "chaoskit/" in k or "aiohttp/client.py" in k}
    return {
        "samples": total,
        "self_by_package": pct(by_pkg, 12),
        "self_top": pct(self_t, top),
        "inclusive_top": pct(incl, top + 25),
        # chaoskit's own functions (and aiohttp's request entry) by inclusive share
        "inclusive_chaoskit": pct(ours, 40),
    }


def _package(frame: str) -> str:
    """``fn (path/to/file.py:12)`` → which package the code is from."""
    where = frame.rpartition("(")[2]
    for pkg in ("chaoskit", "mitmproxy", "aiohttp", "asyncio", "yarl", "multidict", "ssl"):
        if f"{pkg}/" in where:
            return pkg
    if "<string>" in where or "dataclasses" in where:
        return "dataclasses (generated __init__)"
    return "other (stdlib, C)"


def profile(b: Bench) -> dict[str, Any]:
    spy = str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        spy = shutil.which("py-spy") or spy
    if not Path(spy).exists():
        return {"skipped": "py-spy not installed (pip install py-spy)"}
    out: dict[str, Any] = {"tool": "py-spy record --rate 100 (blocking)"}
    for name in ("chaoskit", "mitmdump"):
        (srv,) = b.ensure(name)
        raw = b.run_dir / f"profile-{name}.txt"
        seconds = b.plan.profile_seconds
        argv = [
            spy, "record", "-p", str(srv.pid), "-d", f"{seconds:g}", "-r", "100",
            "-f", "raw", "-o", str(raw),
        ]  # fmt: skip
        spy_proc = subprocess.Popen(
            [*b.place.prefix(b.place.client), *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            pause(0.5)
            b.load.saturate(srv.endpoint, seconds=seconds + 1, warmup=0)
            _, err = spy_proc.communicate(timeout=seconds + 30)
        finally:
            if spy_proc.poll() is None:
                spy_proc.kill()
                spy_proc.wait(5)
        if not raw.exists():
            out[name] = {"error": err.decode(errors="replace")[-500:]}
            continue
        out[name] = _aggregate(raw)
        out[name]["raw_file"] = str(raw)  # collapsed stacks; kept with --keep
    return out


SCENARIOS = {
    "throughput": throughput,
    "latency": light_latency,
    "faults": fault_fidelity,
    "scale": scale,
    "pytest": pytest_overhead,
    "memory": memory,
    "bodies": large_bodies,
    "profile": profile,
}
