"""``python -m bench.grpc [--fast | --smoke] [--out DIR] [--keep]``: gRPC unary calls through
chaoskit, side by side with a direct connection and stock mitmdump (issue #14, Measure).

Six configurations in one run, interleaved, all on 127.0.0.1 (docs/performance.md, "gRPC"):

``direct``    the gRPC origin, :mod:`bench.grpc_origin` (grpcio, one echo method).
``mitmdump``  stock ``mitmdump`` as a regular proxy, the channel's ``grpc.http_proxy``. It cannot
              read HTTP/2 with prior knowledge ("Initiating HTTP/2 connections with prior
              knowledge are currently not supported"): with its default (eager) connection
              strategy it sees the origin speak first (HTTP/2 SETTINGS) and relays the ``CONNECT``
              tunnel as opaque TCP — its figures are those of a byte relay, not of an HTTP proxy;
              with ``connection_strategy=lazy`` (as ``python -m bench`` runs it) every call fails.
``chaoskit``  ``chaoskit proxy`` (the CLI) with a ServiceEntry ``echo`` (port protocol ``GRPC``),
              the channel's ``grpc.http_proxy``: each call is routed and sent to the origin over
              chaoskit's own HTTP/2 connection, as Istio would.

Stock mitmdump's plaintext figure is a byte relay's, so three more configurations carry the same
calls over TLS, where both proxies handle them as HTTP/2 — the like-for-like comparison. The
origin also listens with TLS (ALPN ``h2``, a self-signed certificate made at start-up); the
client opens the ``CONNECT`` tunnel, then TLS with ALPN ``h2``, and verifies the certificate
against one CA only, never skipping verification:

``direct-tls``    the origin's TLS port; the client trusts the origin's certificate.
``mitmdump-tls``  the same stock ``mitmdump`` (``ssl_insecure=true``, so it accepts the
                  self-signed origin), ``CONNECT 127.0.0.1:<tls port>``: it intercepts with its
                  CA (the client trusts ``mitmproxy-ca-cert.pem`` from its confdir), parses each
                  call and sends it to the origin over TLS with ALPN ``h2``.
``chaoskit-tls``  the same chaoskit, ServiceEntry ``echo-tls`` (port protocol ``GRPC``) with a
                  DestinationRule ``tls.mode: SIMPLE``: it intercepts with its CA (the client
                  trusts ``mitmproxy-ca-cert.pem`` from its ``--state-dir``), routes each call
                  and originates TLS with ALPN ``h2`` to the endpoint. The run counts the calls
                  chaoskit's access log shows answered, per configuration.

Added latency is measured against ``direct`` for the plaintext proxies and ``direct-tls`` for
the TLS ones; the report's like-for-like line sets chaoskit-tls / mitmdump-tls against the same
1.5× goal, next to the plaintext ratio.

Measured (grpcio asyncio clients, :mod:`bench.grpc_client`, in their own process):

1. latency at 10 calls/s per configuration, interleaved: p50/p90/p99 and what the proxies add
   to direct's (the issue's bar: chaoskit adds at most 3 ms p50);
2. throughput: a closed loop of 16 calls in flight on one channel, for a fixed number of calls,
   in interleaved rounds (the issue's bar: 1.5× stock mitmdump).

The proxies run on the proxy CPU, the origin and the client on the other (as in ``python -m
bench``). The exit code is 0 when everything ran, whatever the figures (targets are reported,
never enforced), 1 otherwise. Writes ``grpc-<mode>-<time>.json`` and ``.md`` into ``--out``
(default ``bench/results/``).
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
from bench.grpc_origin import METHOD
from bench.procs import BenchError, Placement, Processes, free_port, loadavg, placement, run_bounded
from bench.runner import REPO, SEED, _env, _mitmdump
from bench.stats import percentile, ratio, spread

DEFAULT_OUT = REPO / "bench" / "results"
CONFIGS = ("direct", "mitmdump", "chaoskit", "direct-tls", "mitmdump-tls", "chaoskit-tls")
#: What each proxied configuration's added latency is measured against.
BASELINE = {
    "mitmdump": "direct",
    "chaoskit": "direct",
    "mitmdump-tls": "direct-tls",
    "chaoskit-tls": "direct-tls",
}
#: The mesh host of the origin, and its service port.
HOST = "echo"
PORT = 50051
#: The mesh host of the origin's TLS port (same service port number, its own host: a registry
#: host name, so chaoskit intercepts the client's TLS; the DestinationRule makes it originate
#: TLS towards the endpoint).
TLS_HOST = "echo-tls"
#: The issue's targets.
ADDED_P50_MS = 3.0
THROUGHPUT_VS_MITMDUMP = 1.5


@dataclasses.dataclass(frozen=True)
class GrpcPlan:
    name: str
    latency_calls: int  # counted calls per configuration, at 10/s
    warmup: int  # calls per configuration first, not counted
    throughput_calls: int  # calls per configuration and round
    throughput_rounds: int
    concurrency: int = 16
    payload: int = 64


GRPC_PLANS = {
    "smoke": GrpcPlan("smoke", latency_calls=10, warmup=5, throughput_calls=200,
                      throughput_rounds=1),
    "fast": GrpcPlan("fast", latency_calls=200, warmup=50, throughput_calls=2000,
                     throughput_rounds=2),
    "full": GrpcPlan("full", latency_calls=600, warmup=100, throughput_calls=10_000,
                     throughput_rounds=5),
}  # fmt: skip


def _service(host: str, port: int) -> str:
    """A mesh service whose port speaks gRPC (HTTP/2 to the endpoint) at 127.0.0.1:``port``."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {host}}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  ports: [{{number: {PORT}, name: grpc, protocol: GRPC}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{grpc: {port}}}}}
"""


def grpc_mesh(port: int, tls_port: int | None = None) -> str:
    """The origin as mesh service :data:`HOST`; with ``tls_port``, its TLS port as
    :data:`TLS_HOST` too, whose DestinationRule originates TLS (``SIMPLE``, ALPN ``h2`` for a
    GRPC port: docs/proxy.md §3 and §16)."""
    mesh = _service(HOST, port)
    if tls_port is None:
        return mesh
    return f"""{mesh}---
{_service(TLS_HOST, tls_port)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {TLS_HOST}}}
spec:
  host: {TLS_HOST}
  trafficPolicy: {{tls: {{mode: SIMPLE}}}}
"""


def start(procs: Processes, place: Placement, run_dir: Path) -> list[dict[str, Any]]:
    """The origin and both proxies, ready; the client's targets, in :data:`CONFIGS` order.

    One process per proxy carries its plaintext and its TLS configuration (the calls of the
    configurations never overlap). ``ssl_insecure`` only concerns mitmdump's upstream TLS: its
    plaintext tunnels stay byte relays."""
    env = _env()
    origin_port, tls_port = free_port(), free_port()
    mitm_port, ck_port, admin = free_port(), free_port(), free_port()
    origin_dir, mitm_conf = run_dir / "origin", run_dir / "mitmdump-conf"
    ck_state = run_dir / "chaoskit-state"
    origin = procs.spawn(
        "origin",
        [sys.executable, "-m", "bench.grpc_origin", str(origin_port),
         "--tls", str(tls_port), str(origin_dir)],
        cpu=place.client, env=env,
    )  # fmt: skip
    procs.wait_ready(origin, port=tls_port, text="ready")
    mitm = procs.spawn(
        "mitmdump",
        [*_mitmdump(), "--listen-host", "127.0.0.1", "-p", str(mitm_port), "-q",
         "--set", f"confdir={mitm_conf}", "--set", "ssl_insecure=true"],
        cpu=place.proxy, env=env,
    )  # fmt: skip
    mesh = run_dir / "grpc.yaml"
    mesh.write_text(grpc_mesh(origin_port, tls_port))
    chaoskit = procs.spawn(
        "chaoskit",
        [sys.executable, "-m", "chaoskit", "proxy", "-f", str(mesh),
         "--listen", f"127.0.0.1:{ck_port}", "--admin", f"127.0.0.1:{admin}",
         "--seed", str(SEED), "--state-dir", str(ck_state),
         "--access-log", str(run_dir / "chaoskit-access.log")],
        cpu=place.proxy, env=env,
    )  # fmt: skip
    procs.wait_ready(mitm, port=mitm_port)
    procs.wait_ready(chaoskit, port=ck_port, text="chaoskit proxy ready")
    direct, direct_tls = f"127.0.0.1:{origin_port}", f"127.0.0.1:{tls_port}"
    mitm_url, ck_url = f"http://127.0.0.1:{mitm_port}", f"http://127.0.0.1:{ck_port}"
    # The client trusts only the certificate it must see: the origin's when direct, else the
    # intercepting proxy's CA (mitmdump writes it on start-up, chaoskit prints it when ready).
    return [
        {"name": "direct", "address": direct, "proxy": None},
        {"name": "mitmdump", "address": direct, "proxy": mitm_url},
        {"name": "chaoskit", "address": f"{HOST}:{PORT}", "proxy": ck_url},
        {"name": "direct-tls", "address": direct_tls, "proxy": None,
         "ca": str(origin_dir / "cert.pem")},
        {"name": "mitmdump-tls", "address": direct_tls, "proxy": mitm_url,
         "ca": str(mitm_conf / "mitmproxy-ca-cert.pem")},
        {"name": "chaoskit-tls", "address": f"{TLS_HOST}:{PORT}", "proxy": ck_url,
         "ca": str(ck_state / "mitmproxy-ca-cert.pem")},
    ]  # fmt: skip


def answered_in_access_log(log: Path) -> dict[str, int]:
    """Calls chaoskit's access log shows answered (200, over HTTP/2) for each of its
    configurations: proof that it carried them as HTTP, not as a tunnel."""
    text = log.read_text() if log.exists() else ""
    head = f'"POST {METHOD} HTTP/2" 200 '
    return {
        name: sum(1 for line in text.splitlines() if head in line and f'"{host}:{PORT}"' in line)
        for name, host in (("chaoskit", HOST), ("chaoskit-tls", TLS_HOST))
    }


def _client(place: Placement, spec: dict[str, Any], timeout: float) -> Any:
    """Run :mod:`bench.grpc_client` on the client CPU."""
    argv = [*place.prefix(place.client), sys.executable, "-m", "bench.grpc_client"]
    res = run_bounded(argv, timeout=timeout, input_text=json.dumps(spec), env=_env())
    if res.returncode != 0:
        raise BenchError(f"bench.grpc_client failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return json.loads(res.stdout)


def latency(place: Placement, targets: list[dict[str, Any]], plan: GrpcPlan) -> dict[str, Any]:
    spec = {"mode": "latency", "targets": targets, "rate": 10, "count": plan.latency_calls,
            "warmup": plan.warmup, "payload": plan.payload}  # fmt: skip
    res = _client(place, spec, timeout=plan.latency_calls / 10 + 120)
    per = res["targets"]
    samples = {name: per[name].pop("samples_ms") for name in per}
    added: dict[str, Any] = {}
    for name, base in BASELINE.items():
        d: dict[str, Any] = {"vs": base}
        for q in ("p50", "p90", "p99"):
            a, c = per[name]["latency_ms"].get(q), per[base]["latency_ms"].get(q)
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
        "calls_per_target": plan.latency_calls,
        "warmup_per_target": plan.warmup,
        "payload_bytes": plan.payload,
        "targets": per,
        "warmup_errors": res["warmup_errors"],
        "added_ms": added,
    }


def throughput(place: Placement, targets: list[dict[str, Any]], plan: GrpcPlan) -> dict[str, Any]:
    spec = {"mode": "throughput", "targets": targets, "calls": plan.throughput_calls,
            "rounds": plan.throughput_rounds, "concurrency": plan.concurrency,
            "warmup": plan.warmup, "payload": plan.payload}  # fmt: skip
    calls = plan.throughput_calls * plan.throughput_rounds * len(targets)
    res = _client(place, spec, timeout=calls / 100 + 120)
    runs = {name: t["runs"] for name, t in res["targets"].items()}
    table: dict[str, dict[str, Any]] = {
        name: {
            "rps": spread([r["rps"] for r in rs], 1),
            "errors": sum(sum(r["errors"].values()) for r in rs),
        }
        for name, rs in runs.items()
    }

    def versus(a: str, b: str) -> dict[str, Any]:
        per_round = [
            x["rps"] / y["rps"]
            for x, y in zip(runs[a], runs[b], strict=True)
            if x["rps"] and y["rps"]
        ]
        return {
            "ratio_of_medians": ratio(table[a]["rps"]["median"], table[b]["rps"]["median"]),
            "per_round": spread(per_round, 3),
        }

    def rps(name: str) -> Any:
        return table[name]["rps"]["median"]

    return {
        "calls_per_round": plan.throughput_calls,
        "rounds": plan.throughput_rounds,
        "concurrency": plan.concurrency,
        "payload_bytes": plan.payload,
        "results": table,
        "runs": runs,
        "chaoskit_vs_mitmdump": versus("chaoskit", "mitmdump"),
        "chaoskit_vs_direct": ratio(rps("chaoskit"), rps("direct")),
        # like for like: both proxies intercept the TLS and carry each call as HTTP/2
        "chaoskit_tls_vs_mitmdump_tls": versus("chaoskit-tls", "mitmdump-tls"),
        "chaoskit_tls_vs_direct_tls": ratio(rps("chaoskit-tls"), rps("direct-tls")),
    }


# -- targets and Markdown ---------------------------------------------------------------------

MITMDUMP_NOTE = (
    "stock mitmdump cannot read HTTP/2 with prior knowledge: it relays these calls' CONNECT "
    "tunnels as opaque TCP (no HTTP parsing, no routing)"
)
TLS_NOTE = (
    "over TLS both proxies intercept with their own CA (the client verifies it), parse each "
    "call as HTTP/2 and send it to the origin over TLS with ALPN h2: the like-for-like comparison"
)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's gRPC targets this run measured."""
    get, fmt = report._get, report._fmt
    out: list[dict[str, Any]] = []
    lat = results.get("latency")
    if lat:
        add = get(lat, "added_ms", "chaoskit") or {}
        out.append(report._target(
            "grpc-latency-p50", "gRPC unary at 10 calls/s, added p50 (chaoskit − direct)",
            f"<= {ADDED_P50_MS:g} ms", fmt(add.get("p50"), 2, " ms"),
            report._le(add.get("p50"), ADDED_P50_MS),
            f"p99 +{fmt(add.get('p99'), 2)} ms; stock mitmdump (TCP relay) "
            f"+{fmt(get(lat, 'added_ms', 'mitmdump', 'p50'), 2)} ms p50; over TLS (vs "
            f"direct-tls) chaoskit-tls +{fmt(get(lat, 'added_ms', 'chaoskit-tls', 'p50'), 2)} ms, "
            f"mitmdump-tls +{fmt(get(lat, 'added_ms', 'mitmdump-tls', 'p50'), 2)} ms p50",
        ))  # fmt: skip
    tp = results.get("throughput")
    if tp:
        r = get(tp, "chaoskit_vs_mitmdump", "ratio_of_medians")
        out.append(report._target(
            "grpc-throughput",
            f"gRPC unary, {tp['concurrency']} in flight: chaoskit calls/s vs stock mitmdump",
            f">= {THROUGHPUT_VS_MITMDUMP:g}×",
            f"{fmt(r, 2, '×')} ({fmt(get(tp, 'results', 'chaoskit', 'rps', 'median'), 0)} vs "
            f"{fmt(get(tp, 'results', 'mitmdump', 'rps', 'median'), 0)} calls/s)",
            report._ge(r, THROUGHPUT_VS_MITMDUMP),
            f"direct {fmt(get(tp, 'results', 'direct', 'rps', 'median'), 0)} calls/s; "
            + MITMDUMP_NOTE,
        ))  # fmt: skip
        r = get(tp, "chaoskit_tls_vs_mitmdump_tls", "ratio_of_medians")
        out.append(report._target(
            "grpc-throughput-tls",
            f"gRPC unary over TLS, {tp['concurrency']} in flight, like for like: chaoskit-tls "
            "calls/s vs stock mitmdump-tls",
            f">= {THROUGHPUT_VS_MITMDUMP:g}×",
            f"{fmt(r, 2, '×')} ({fmt(get(tp, 'results', 'chaoskit-tls', 'rps', 'median'), 0)} vs "
            f"{fmt(get(tp, 'results', 'mitmdump-tls', 'rps', 'median'), 0)} calls/s)",
            report._ge(r, THROUGHPUT_VS_MITMDUMP),
            f"direct-tls {fmt(get(tp, 'results', 'direct-tls', 'rps', 'median'), 0)} calls/s; "
            + TLS_NOTE,
        ))  # fmt: skip
    return out


def markdown(run: dict[str, Any]) -> str:
    meta, res = run["meta"], run["results"]
    row, st = report._row, report._spread_text
    lines = [f"# chaoskit gRPC benchmark — {meta['mode']} run", ""]
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['started']}; duration {meta['duration_s']:.0f} s",
        f"- Machine: {meta['machine']}; load average before/after "
        f"{meta['loadavg_before']} / {meta['loadavg_after']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        f"- Placement: {meta['placement']}",
        f"- chaoskit sources: {meta['chaoskit_source']}",
        f"- mitmdump: {MITMDUMP_NOTE}.",
        f"- mitmdump-tls, chaoskit-tls: {TLS_NOTE}.",
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
    lat = res.get("latency")
    if lat:
        lines += [
            "",
            f"## 1. Latency ({lat['calls_per_target']} calls per configuration at "
            f"{lat['rate_per_target']}/s, interleaved, after {lat['warmup_per_target']} not "
            f"counted; {lat['payload_bytes']}-byte messages, one channel each)",
            "",
            row("Configuration", "p50 ms", "p90 ms", "p99 ms", "max ms", "added to",
                "added p50 ms", "added p99 ms", "errors"),
            row("---", *["---:"] * 4, "---", *["---:"] * 3),
        ]  # fmt: skip
        for name, t in lat["targets"].items():
            q = t["latency_ms"]
            add = lat["added_ms"].get(name, {})
            lines.append(row(
                name, q.get("p50"), q.get("p90"), q.get("p99"), q.get("max"), add.get("vs"),
                add.get("p50"), add.get("p99"), sum(t["errors"].values()),
            ))  # fmt: skip
    tp = res.get("throughput")
    if tp:
        lines += [
            "",
            f"## 2. Throughput ({tp['calls_per_round']} calls per configuration and round, "
            f"{tp['concurrency']} in flight on one channel; {tp['rounds']} interleaved "
            "round(s); median (min–max))",
            "",
            row("Configuration", "calls/s", "errors"),
            row("---", "---:", "---:"),
        ]
        for name, t in tp["results"].items():
            lines.append(row(name, st(t["rps"], 0), t["errors"]))
        r, rt = tp["chaoskit_vs_mitmdump"], tp["chaoskit_tls_vs_mitmdump_tls"]
        lines += [
            "",
            f"- plaintext: chaoskit / mitmdump (a TCP relay): "
            f"{report._fmt(r['ratio_of_medians'], 2)}× (per round {st(r['per_round'], 2)}); "
            f"chaoskit / direct: {report._fmt(tp['chaoskit_vs_direct'], 2)}×.",
            f"- TLS, like for like: chaoskit-tls / mitmdump-tls: "
            f"{report._fmt(rt['ratio_of_medians'], 2)}× (per round {st(rt['per_round'], 2)}); "
            f"chaoskit-tls / direct-tls: {report._fmt(tp['chaoskit_tls_vs_direct_tls'], 2)}×.",
        ]
    return "\n".join(lines) + "\n"


# -- the command ------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    return side_run_args(
        "python -m bench.grpc",
        __doc__,
        "200 latency calls, 2 rounds of 2,000 calls (about 30 s)",
        DEFAULT_OUT,
        argv,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = GRPC_PLANS[args.mode]
    place = placement()
    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix="chaoskit-bench-grpc-"))
    os.environ["CHAOSKIT_BENCH_RUN"] = str(run_dir)  # every child inherits it: findable
    run: dict[str, Any] = {
        "meta": {
            "mode": args.mode,
            "command": " ".join(["python -m bench.grpc", *(argv or sys.argv[1:])]),
            "started": started.isoformat(timespec="seconds"),
            "run_dir": str(run_dir),
            "machine": f"{_cpu_model()} × {os.cpu_count()} CPUs",
            "versions": {d: _version(d) for d in ("mitmproxy", "chaoskit", "grpcio")},
            "chaoskit_source": source_fingerprint(),
            "placement": place.description,
            "loadavg_before": loadavg(),
            "plan": dataclasses.asdict(plan),
        },
        "results": {},
        "errors": {},
    }
    print(f"chaoskit gRPC bench ({args.mode}); {place.description}", flush=True)
    try:
        with Processes(run_dir, place) as procs:
            try:
                servers = start(procs, place, run_dir)
            except Exception as e:
                run["errors"]["start"] = f"{type(e).__name__}: {e}"
                servers = []
            for name, scenario in (("latency", latency), ("throughput", throughput)):
                if not servers:
                    break
                s0 = time.monotonic()
                print(f"  {name} ...", end="", flush=True)
                try:
                    run["results"][name] = scenario(place, servers, plan)
                except Exception as e:  # report it, go on with the next
                    run["errors"][name] = f"{type(e).__name__}: {e}"
                    print(f" failed: {type(e).__name__}: {str(e)[:2000]}", flush=True)
                else:
                    print(f" {time.monotonic() - s0:.0f} s", flush=True)
        # read once chaoskit has stopped (its log flushed)
        run["results"]["chaoskit_access_log"] = answered_in_access_log(
            run_dir / "chaoskit-access.log"
        )
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    run["meta"]["duration_s"] = round(time.monotonic() - t0, 1)
    run["meta"]["loadavg_after"] = loadavg()
    run["targets"] = targets(run["results"])
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"grpc-{args.mode}-{started.strftime('%Y%m%dT%H%M%SZ')}"
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
