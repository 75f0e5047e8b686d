"""``python -m bench.streaming [--fast | --smoke] [--out DIR] [--keep]``: streamed responses
through chaoskit, side by side with a direct connection and stock mitmdump (issue #14, Measure).

Three configurations in one run, all on 127.0.0.1 (docs/performance.md, "Streaming"):

``direct``    the streaming origin, :mod:`bench.stream_origin`.
``mitmdump``  stock ``mitmdump --mode reverse:http://127.0.0.1:<origin> --set
              stream_large_bodies=1`` (mitmproxy's own streaming, no addon).
``chaoskit``  ``chaoskit proxy`` (the CLI) with a ServiceEntry ``stream`` for the origin and a
              route with ``timeout: 86400s``, used as a forward proxy (``GET http://stream/sse``).

Measured (the load from :mod:`bench.stream_client`, in its own process):

1. SSE time to first event at 10 new streams/s per configuration, interleaved: p50/p90/p99
   and the p50 added to direct's.
2. One large download per configuration and round: throughput, and the proxy's RSS before,
   at its peak (``VmRSS`` sampled every 0.1 s) and the growth.

The proxies run on the proxy CPU, the origin and the client on the other (as in
``python -m bench``). Buffered HTTP/1.1 is not measured here: ``python -m bench --fast --only
throughput`` checks it. The exit code is 0 when everything ran, whatever the figures (targets
are reported, never enforced), 1 otherwise. Writes ``streaming-<mode>-<time>.json`` and
``.md`` into ``--out`` (default ``bench/results/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.__main__ import (
    _cpu_model,
    _terminate,
    _version,
    side_run_args,
    source_fingerprint,
)
from bench.load import Endpoint, Load
from bench.procs import (
    BenchError,
    Proc,
    Processes,
    free_port,
    loadavg,
    pause,
    placement,
    rss_mb,
    run_bounded,
    sampling,
)
from bench.runner import PLANS, REPO, Bench, _mitmdump
from bench.stats import percentile, ratio, spread

DEFAULT_OUT = REPO / "bench" / "results"
CONFIGS = ("direct", "mitmdump", "chaoskit")
#: The mesh host of the origin.
HOST = "stream"
#: The issue's targets.
TTFB_ADDED_P50_MS = 3.0
RSS_GROWTH_MB = 20.0
THROUGHPUT_VS_MITMDUMP = 0.5


@dataclasses.dataclass(frozen=True)
class StreamPlan:
    name: str
    sse_count: int  # counted SSE requests per configuration, at 10/s
    sse_warmup: int  # requests per configuration first, not counted
    download_mb: int  # MiB per download
    download_rounds: int


STREAM_PLANS = {
    "smoke": StreamPlan("smoke", sse_count=10, sse_warmup=3, download_mb=8, download_rounds=1),
    "fast": StreamPlan("fast", sse_count=100, sse_warmup=10, download_mb=256, download_rounds=1),
    "full": StreamPlan("full", sse_count=300, sse_warmup=10, download_mb=1024, download_rounds=2),
}


def stream_mesh(port: int) -> str:
    """The origin as a mesh service, with a route timeout long enough for any stream."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {HOST}}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {port}}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {HOST}}}
spec:
  hosts: [{HOST}]
  http:
  - route: [{{destination: {{host: {HOST}}}}}]
    timeout: 86400s
"""


class StreamBench(Bench):
    """:class:`~bench.runner.Bench` with this benchmark's three servers (same start, probe,
    stop and placement; the origin is :mod:`bench.stream_origin` on the first origin port)."""

    def _spawn(self, name: str) -> tuple[Proc | None, Endpoint, str | None]:
        origin = self.origin_ports[0]
        if name == "origin":
            argv = [sys.executable, "-m", "bench.stream_origin", str(origin)]
            proc = self.procs.spawn(name, argv, cpu=self.place.client, env=self.env)
            return proc, Endpoint("direct", origin), "ready"
        if name == "mitmdump":
            port = free_port()
            argv = [
                *_mitmdump(), "--mode", f"reverse:http://127.0.0.1:{origin}",
                "--listen-host", "127.0.0.1", "-p", str(port), "-q",
                "--set", "stream_large_bodies=1", "--set", "connection_strategy=lazy",
                "--set", f"confdir={self.run_dir / 'mitmdump-conf'}",
            ]  # fmt: skip
            proc = self.procs.spawn(name, argv, cpu=self.place.proxy, env=self.env)
            return proc, Endpoint(name, port), None
        if name == "chaoskit":
            mesh = self.run_dir / "stream.yaml"
            mesh.write_text(stream_mesh(origin))
            proc, port, text = self._chaoskit_cli(name, mesh)
            return proc, Endpoint(name, port, f"http://{HOST}/", HOST), text
        return super()._spawn(name)


def _at(ep: Endpoint, path: str, name: str | None = None) -> Endpoint:
    """The endpoint's request-target with ``path`` (``/sse``, ``http://stream/sse``)."""
    return dataclasses.replace(ep, name=name or ep.name, target=ep.target.rstrip("/") + path)


#: The SSE measurement's targets: (name, server, path, events per response, compared with).
#: The two ``-buffered`` ones get the first event alone, complete with its head (chaoskit
#: buffers such a body): the buffered cost of the same moment, next to the streamed one.
SSE_TARGETS = (
    ("direct", "direct", "/sse", 3, None),
    ("mitmdump", "mitmdump", "/sse", 3, "direct"),
    ("chaoskit", "chaoskit", "/sse", 3, "direct"),
    ("direct-buffered", "direct", "/event", 1, None),
    ("chaoskit-buffered", "chaoskit", "/event", 1, "direct-buffered"),
)


def _client(b: Bench, spec: dict[str, Any], eps: list[Endpoint], timeout: float) -> Any:
    """Run :mod:`bench.stream_client` on the client CPU."""
    full = {**spec, "targets": [e.spec() for e in eps]}
    argv = [*b.place.prefix(b.place.client), b.load.python, "-m", "bench.stream_client"]
    res = run_bounded(argv, timeout=timeout, input_text=json.dumps(full), env=b.env)
    if res.returncode != 0:
        raise BenchError(f"bench.stream_client failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return json.loads(res.stdout)


def sse_ttfb(b: StreamBench, plan: StreamPlan) -> dict[str, Any]:
    servers = {s.name: s for s in b.ensure(*CONFIGS)}
    eps = [_at(servers[srv].endpoint, path, name) for name, srv, path, _, _ in SSE_TARGETS]
    total = plan.sse_count + plan.sse_warmup
    spec = {"mode": "sse", "rate": 10, "count": plan.sse_count, "warmup": plan.sse_warmup,
            "events": {t[0]: t[3] for t in SSE_TARGETS}, "timeout": 10}  # fmt: skip
    res = _client(b, spec, eps, timeout=total / 10 + 60)
    per = res["targets"]
    samples = {name: per[name].pop("samples_ms") for name in per}
    added: dict[str, Any] = {}
    for name, _, _, _, base in SSE_TARGETS:
        if base is None:
            continue
        d: dict[str, Any] = {"vs": base}
        for q in ("p50", "p90", "p99"):
            a, c = per[name]["ttfb_ms"].get(q), per[base]["ttfb_ms"].get(q)
            d[q] = round(a - c, 3) if a is not None and c is not None else None
        blocks = []
        for i in range(0, len(samples[name]) - 99, 100):
            x = percentile(samples[name][i : i + 100], 50)
            y = percentile(samples[base][i : i + 100], 50)
            if x is not None and y is not None:
                blocks.append(x - y)
        d["p50_by_block_of_100"] = spread(blocks, 3)
        added[name] = d
    return {
        "rate_per_target": 10,
        "requests_per_target": plan.sse_count,
        "warmup_per_target": plan.sse_warmup,
        "events_per_stream": 3,
        "targets": per,
        "added_ms": added,
    }


def downloads(b: StreamBench, plan: StreamPlan) -> dict[str, Any]:
    servers = {s.name: s for s in b.ensure(*CONFIGS)}
    size = plan.download_mb * 2**20
    origin = b.servers["origin"]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in CONFIGS}
    for r in range(plan.download_rounds):
        k = r % len(CONFIGS)
        for name in CONFIGS[k:] + CONFIGS[:k]:
            srv = servers[name]
            watched = srv.pid if srv.pid is not None else origin.pid
            assert watched is not None
            before = rss_mb(watched)
            spec = {"mode": "download", "bytes": size, "timeout": 600}
            with sampling(watched, every=0.1) as sampled:
                res = _client(b, spec, [_at(srv.endpoint, f"/download/{size}")], timeout=660)
            pause(0.5)
            peak = max(v for v in (sampled["peak_rss_mb"], before, rss_mb(watched)) if v)
            res.update({
                "round": r,
                "rss_of": "proxy" if srv.pid is not None else "origin",
                "rss_before_mb": _mb(before),
                "rss_peak_mb": _mb(peak),
                "rss_after_mb": _mb(rss_mb(watched)),
                "rss_growth_mb": _mb(peak - before) if before is not None else None,
            })  # fmt: skip
            runs[name].append(res)
    table = {}
    for name, rs in runs.items():
        table[name] = {
            "mb_per_s": spread([x["mb_per_s"] for x in rs], 1),
            "seconds": spread([x["seconds"] for x in rs], 2),
            "complete": all(x["complete"] and x["status"] == 200 for x in rs),
            "framing": sorted({x["framing"] for x in rs}),
            "rss_of": rs[0]["rss_of"],
            "rss_before_mb": rs[0]["rss_before_mb"],
            "rss_peak_mb": max((x["rss_peak_mb"] for x in rs if x["rss_peak_mb"]), default=None),
            "rss_growth_mb": max(
                (x["rss_growth_mb"] for x in rs if x["rss_growth_mb"] is not None), default=None
            ),
        }
    ratios = [
        c["mb_per_s"] / m["mb_per_s"]
        for c, m in zip(runs["chaoskit"], runs["mitmdump"], strict=True)
        if c["mb_per_s"] and m["mb_per_s"]
    ]
    return {
        "bytes": size,
        "mb": plan.download_mb,
        "rounds": plan.download_rounds,
        "results": table,
        "runs": runs,
        "chaoskit_vs_mitmdump": {
            "ratio_of_medians": ratio(
                table["chaoskit"]["mb_per_s"]["median"], table["mitmdump"]["mb_per_s"]["median"]
            ),
            "per_round": spread(ratios, 3),
        },
    }


def _mb(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


# -- targets and Markdown ---------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's streaming targets this run measured."""
    get, fmt = report._get, report._fmt
    out: list[dict[str, Any]] = []
    sse = results.get("sse")
    if sse:
        add = get(sse, "added_ms", "chaoskit") or {}
        md = get(sse, "added_ms", "mitmdump", "p50")
        out.append(report._target(
            "sse-ttfb-p50", "SSE time to first event at 10 req/s, added p50 (chaoskit − direct)",
            f"<= {TTFB_ADDED_P50_MS:g} ms", fmt(add.get("p50"), 2, " ms"),
            report._le(add.get("p50"), TTFB_ADDED_P50_MS),
            f"p90 +{fmt(add.get('p90'), 2)} ms, p99 +{fmt(add.get('p99'), 2)} ms; stock "
            f"mitmdump (streaming) +{fmt(md, 2)} ms p50; at the same moment chaoskit adds "
            f"{fmt(get(sse, 'added_ms', 'chaoskit-buffered', 'p50'), 2)} ms p50 to the same "
            "event answered whole (buffered)",
        ))  # fmt: skip
    dl = results.get("download")
    if dl:
        ck = get(dl, "results", "chaoskit") or {}
        growth = ck.get("rss_growth_mb")
        out.append(report._target(
            "download-rss", f"{dl['mb']} MiB download: chaoskit RSS growth (peak − before)",
            f"<= {RSS_GROWTH_MB:g} MB", fmt(growth, 1, " MB"),
            None if growth is None else (growth <= RSS_GROWTH_MB and ck.get("complete", False)),
            f"before {fmt(ck.get('rss_before_mb'), 1)} MB, peak {fmt(ck.get('rss_peak_mb'), 1)} "
            f"MB; stock mitmdump growth "
            f"{fmt(get(dl, 'results', 'mitmdump', 'rss_growth_mb'), 1)} MB",
        ))  # fmt: skip
        r = get(dl, "chaoskit_vs_mitmdump", "ratio_of_medians")
        out.append(report._target(
            "download-throughput",
            f"{dl['mb']} MiB download: chaoskit throughput vs stock mitmdump streaming",
            f">= {THROUGHPUT_VS_MITMDUMP:g}×",
            f"{fmt(r, 2, '×')} ({fmt(get(ck, 'mb_per_s', 'median'), 0)} vs "
            f"{fmt(get(dl, 'results', 'mitmdump', 'mb_per_s', 'median'), 0)} MB/s)",
            report._ge(r, THROUGHPUT_VS_MITMDUMP),
            f"direct {fmt(get(dl, 'results', 'direct', 'mb_per_s', 'median'), 0)} MB/s",
        ))  # fmt: skip
    return out


def markdown(run: dict[str, Any]) -> str:
    meta, res = run["meta"], run["results"]
    row, st = report._row, report._spread_text
    lines = [f"# chaoskit streaming benchmark — {meta['mode']} run", ""]
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['started']}; duration {meta['duration_s']:.0f} s",
        f"- Machine: {meta['machine']}; load average before/after "
        f"{meta['loadavg_before']} / {meta['loadavg_after']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        f"- Placement: {meta['placement']}",
        f"- chaoskit sources: {meta['chaoskit_source']}",
        "- Buffered HTTP/1.1 is not measured here: `python -m bench --fast --only throughput`.",
        "",
        "## Targets",
        "",
        row("Target", "Goal", "This run", "Verdict", "Notes"),
        row("---", "---", "---", "---", "---"),
    ]
    for t in run["targets"]:
        lines.append(row(t["what"], t["target"], t["figure"], report._mark(t["met"]), t["detail"]))
    for name, error in run["errors"].items():
        lines += ["", f"**{name} could not run**: `{error}`"]
    sse = res.get("sse")
    if sse:
        lines += [
            "",
            f"## 1. SSE time to first event ({sse['requests_per_target']} streams per "
            f"configuration at {sse['rate_per_target']}/s, interleaved, after "
            f"{sse['warmup_per_target']} not counted; {sse['events_per_stream']} events 100 ms "
            "apart, each stream read to its end; the `-buffered` rows get the first event alone, "
            "complete with its head, and are compared with direct-buffered)",
            "",
            row("Configuration", "p50 ms", "p90 ms", "p99 ms", "max ms", "added p50 ms",
                "added p99 ms", "errors", "connections"),
            row("---", *["---:"] * 8),
        ]  # fmt: skip
        for name, t in sse["targets"].items():
            q = t["ttfb_ms"]
            add = sse["added_ms"].get(name, {})
            lines.append(row(
                name, q.get("p50"), q.get("p90"), q.get("p99"), q.get("max"), add.get("p50"),
                add.get("p99"), t["errors"], t["connections"],
            ))  # fmt: skip
    dl = res.get("download")
    if dl:
        lines += [
            "",
            f"## 2. {dl['mb']} MiB download ({dl['rounds']} round(s); median (min–max); RSS "
            "of the proxy, of the origin for direct, sampled every 0.1 s)",
            "",
            row("Configuration", "MB/s", "seconds", "complete", "framing", "RSS before MB",
                "RSS peak MB", "growth MB"),
            row("---", "---:", "---:", "---", "---", "---:", "---:", "---:"),
        ]  # fmt: skip
        for name, t in dl["results"].items():
            lines.append(row(
                f"{name} ({t['rss_of']} RSS)" if name == "direct" else name,
                st(t["mb_per_s"], 0), st(t["seconds"], 2), t["complete"],
                ", ".join(t["framing"]), t["rss_before_mb"], t["rss_peak_mb"], t["rss_growth_mb"],
            ))  # fmt: skip
        r = dl["chaoskit_vs_mitmdump"]
        lines += [
            "",
            f"chaoskit / mitmdump throughput: {report._fmt(r['ratio_of_medians'], 2)}× "
            f"(per round {st(r['per_round'], 2)}).",
        ]
    return "\n".join(lines) + "\n"


# -- the command ------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    return side_run_args(
        "python -m bench.streaming",
        __doc__,
        "N=100 SSE streams, a 256 MiB download (about a minute)",
        DEFAULT_OUT,
        argv,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = STREAM_PLANS[args.mode]
    place = placement()
    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="chaoskit-bench-stream-"))
    os.environ["CHAOSKIT_BENCH_RUN"] = str(run_dir)  # every child inherits it: findable
    load = Load(place, run_dir, use_wrk=False)
    run: dict[str, Any] = {
        "meta": {
            "mode": args.mode,
            "command": " ".join(["python -m bench.streaming", *(argv or sys.argv[1:])]),
            "started": started.isoformat(timespec="seconds"),
            "run_dir": str(run_dir),
            "machine": f"{_cpu_model()} × {os.cpu_count()} CPUs",
            "versions": {d: _version(d) for d in ("mitmproxy", "chaoskit")},
            "chaoskit_source": source_fingerprint(),
            "placement": place.description,
            "loadavg_before": loadavg(),
            "plan": dataclasses.asdict(plan),
        },
        "results": {},
        "errors": {},
    }
    print(f"chaoskit streaming bench ({args.mode}); {place.description}", flush=True)
    try:
        with Processes(run_dir, place) as procs:
            # Bench's plan and its realistic mesh.yaml are not used here (only its servers)
            bench = StreamBench(PLANS["smoke"], run_dir, procs, place, load)
            for name, scenario in (("sse", sse_ttfb), ("download", downloads)):
                s0 = time.monotonic()
                print(f"  {name} ...", end="", flush=True)
                try:
                    run["results"][name] = scenario(bench, plan)
                except Exception as e:  # report it, go on with the next
                    run["errors"][name] = f"{type(e).__name__}: {e}"
                    print(f" failed: {type(e).__name__}: {str(e)[:2000]}", flush=True)
                else:
                    print(f" {time.monotonic() - s0:.0f} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    run["meta"]["duration_s"] = round(time.monotonic() - t0, 1)
    run["meta"]["loadavg_after"] = loadavg()
    run["targets"] = targets(run["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"streaming-{args.mode}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    base.with_suffix(".json").write_text(json.dumps(run, indent=1, default=str) + "\n")
    base.with_suffix(".md").write_text(markdown(run))
    print()
    for t in run["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        print(f"  [{verdict:>6}] {t['what']}: {t['figure']} (target {t['target']})")
    print(f"\nwrote {base}.json and .md ({run['meta']['duration_s']:.0f} s)")
    return 1 if run["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
