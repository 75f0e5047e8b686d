#!/usr/bin/env python
"""A bounded soak of ``chaoskit proxy``: real upstreams, a proxy subprocess, a mix of everything.

    python tests/soak/soak.py --duration 600 --rate 200        # the full soak (10 minutes)
    python tests/soak/soak.py --duration 30 --rate 100 --json out/soak.json

Traffic (open loop, at ``--rate`` requests per second, from ``--workers`` threads) goes through
the proxy's forward listener and one Gateway listener, across routes with weighted splits,
retries, circuit breakers, outlier detection, route timeouts, VirtualService faults and
UpstreamFaults (aborts, resets, delays, cut bodies), ALLOW_ANY passthrough, refused endpoints,
and clients that hang up mid-request. Every request carries its own ``x-request-id``.

What is checked, and makes the exit code 1 when it fails:

- every request got exactly one answer (clients that hang up on purpose: none), and the access
  log (JSON) has exactly one line per request id: nothing lost, nothing duplicated, nothing
  extra; the proxy's own ``http.downstream_rq_total`` agrees;
- every answer agrees with its line: status, bytes, and for answers from an upstream, which
  upstream (the body names it; the line's ``upstream_host`` must be that server);
- a hung-up request's line says status 0 with flag ``DC``;
- the proxy's RSS and open file descriptors stay flat after warm-up (``--rss-growth-mb``,
  ``--fd-slack``), sampled every second with psutil (or ``/proc`` without it);
- its standard error has no ``Task was destroyed``, ``never awaited``, unclosed-resource
  warnings (ResourceWarning is turned on), tracebacks or errors.

Only 127.0.0.1 is ever contacted. Every loop is bounded by ``--duration`` plus fixed grace
times; the proxy is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import queue
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `chaoskit` and `tests` importable
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from chaoskit.testing import Upstream  # noqa: E402
from chaoskit.testing.upstream import free_port  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover - /proc is enough on Linux
    psutil = None

#: What must never appear on the proxy's standard error.
BAD_STDERR = re.compile(
    r"Task was destroyed|never awaited|[Uu]nclosed|ResourceWarning|Traceback|Unhandled|"
    r"Exception in callback|Task exception was never retrieved|: ERROR:|Addon error"
)


# -- the proxy process ----------------------------------------------------------------------


class Lines:
    """A subprocess stream, line by line, kept (bounded) and waitable."""

    def __init__(self, stream: Any, keep: int = 10_000) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.lines: list[str] = []
        self.keep = keep
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            with self._lock:
                if len(self.lines) < self.keep:
                    self.lines.append(line)
            self.q.put(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line containing {text!r} within {timeout}s")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if text in line:
                return line

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class ProxyProcess:
    """``python -m chaoskit proxy`` on free loopback ports; stop() always ends it."""

    def __init__(
        self,
        files: list[Path],
        state_dir: Path,
        *,
        access_log: Path | None = None,
        seed: int = 1,
        extra: tuple[str, ...] = (),
    ) -> None:
        args = [sys.executable, "-m", "chaoskit", "proxy"]
        for f in files:
            args += ["-f", str(f)]
        args += ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--seed", str(seed)]
        args += ["--state-dir", str(state_dir)]
        if access_log is not None:
            args += ["--access-log", str(access_log), "--access-log-format", "json"]
        args += list(extra)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # unclosed sockets, transports and sessions are ResourceWarnings: make them visible
            "PYTHONWARNINGS": "default::ResourceWarning",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=str(ROOT),
        )  # fmt: skip
        self.stdout = Lines(self.proc.stdout)
        self.stderr = Lines(self.proc.stderr)
        self.url = ""
        self.admin_url = ""
        self.port = 0

    def wait_ready(self, timeout: float = 30.0) -> ProxyProcess:
        try:
            line = self.stdout.wait_for("chaoskit proxy ready:", timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                "the proxy did not start:\n" + "\n".join(self.stderr.snapshot())
            ) from None
        fields = dict(f.split("=", 1) for f in line.split(": ", 1)[1].split() if "=" in f)
        self.url, self.admin_url = fields["listen"], fields["admin"]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for lines, pipe in ((self.stdout, self.proc.stdout), (self.stderr, self.proc.stderr)):
            lines.join(5)  # read to the end, then close our side
            if pipe is not None:
                pipe.close()
        return self.proc.returncode

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rss_and_fds(pid: int) -> tuple[float, int]:
    """Resident memory (MB) and open file descriptors of a process."""
    if psutil is not None:
        p = psutil.Process(pid)
        return p.memory_info().rss / 1e6, p.num_fds()
    with open(f"/proc/{pid}/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss_kb * 1024 / 1e6, len(os.listdir(f"/proc/{pid}/fd"))


class Sampler:
    """RSS and descriptors of the proxy, once a second, in a thread (bounded by stop())."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[tuple[float, float, int]] = []  # (t, rss MB, fds)
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # the process may be exiting
                rss, fds = rss_and_fds(self.pid)
                self.samples.append((time.monotonic() - self.t0, rss, fds))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- the mesh --------------------------------------------------------------------------------

UPSTREAMS = ("v1", "v2", "v3", "r1", "r2", "details", "flaky", "slow", "cut", "sleepy", "other")


def mesh_yaml(ups: dict[str, Upstream], gone_port: int, gateway_port: int) -> str:
    def se(name: str, *members: str, port: int | None = None) -> str:
        eps = ", ".join(
            f"{{address: 127.0.0.1, ports: {{http: {ups[m].port}}}, labels: {{version: {m}}}}}"
            for m in members
        ) or f"{{address: 127.0.0.1, ports: {{http: {port}}}}}"  # fmt: skip
        return textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {{name: {name}}}
            spec:
              hosts: [{name}]
              ports: [{{number: 9080, name: http, protocol: HTTP}}]
              resolution: STATIC
              endpoints: [{eps}]
            """)

    services = [
        se("reviews", "v1", "v2", "v3"),
        se("ratings", "r1", "r2"),
        se("details", "details"),
        se("flaky", "flaky"),
        se("slow", "slow"),
        se("cut", "cut"),
        se("sleepy", "sleepy"),
        se("gone", port=gone_port),
    ]
    policies = textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: reviews}}
        spec:
          host: reviews
          trafficPolicy: {{loadBalancer: {{simple: LEAST_REQUEST}}}}
          subsets:
          - {{name: v1, labels: {{version: v1}}}}
          - {{name: v2, labels: {{version: v2}}}}
          - {{name: v3, labels: {{version: v3}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: reviews}}
        spec:
          hosts: [reviews]
          gateways: [shop-gateway, mesh]
          http:
          - match: [{{gateways: [shop-gateway]}}]
            route: [{{destination: {{host: reviews, subset: v1}}}}]
          - route:
            - {{destination: {{host: reviews, subset: v1}}, weight: 60}}
            - {{destination: {{host: reviews, subset: v2}}, weight: 30}}
            - {{destination: {{host: reviews, subset: v3}}, weight: 10}}
            retries: {{attempts: 2, perTryTimeout: 2s, retryOn: "5xx,reset,connect-failure"}}
            timeout: 5s
        ---
        apiVersion: chaoskit.dev/v1alpha1
        kind: UpstreamFault
        metadata: {{name: reviews-v3-flaky}}
        spec: {{host: reviews, subset: v3, abort: {{httpStatus: 503}}, percentage: {{value: 30}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: ratings}}
        spec:
          host: ratings
          trafficPolicy:
            outlierDetection: {{consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 2s,
                                maxEjectionPercent: 50}}
        ---
        apiVersion: chaoskit.dev/v1alpha1
        kind: UpstreamFault
        metadata: {{name: ratings-r2-errors}}
        spec: {{host: ratings, endpoint: "127.0.0.1:{ups["r2"].port}", abort: {{httpStatus: 500}},
               percentage: {{value: 40}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: ratings}}
        spec:
          hosts: [ratings]
          http:
          - fault:
              abort: {{httpStatus: 503, percentage: {{value: 3}}}}
              delay: {{fixedDelay: 20ms, percentage: {{value: 10}}}}
            route: [{{destination: {{host: ratings}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: details}}
        spec:
          host: details
          trafficPolicy:
            connectionPool: {{tcp: {{maxConnections: 1}}, http: {{http1MaxPendingRequests: 1}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: flaky}}
        spec:
          hosts: [flaky]
          http:
          - route: [{{destination: {{host: flaky}}}}]
            retries: {{attempts: 2, retryOn: connect-failure}}
        ---
        apiVersion: chaoskit.dev/v1alpha1
        kind: UpstreamFault
        metadata: {{name: flaky-resets}}
        spec: {{host: flaky, reset: {{after: connect}}, percentage: {{value: 15}}}}
        ---
        apiVersion: chaoskit.dev/v1alpha1
        kind: UpstreamFault
        metadata: {{name: flaky-jitter}}
        spec: {{host: flaky, delay: {{distribution: uniform, min: 0ms, max: 20ms}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: slow}}
        spec:
          hosts: [slow]
          http:
          - route: [{{destination: {{host: slow}}}}]
            timeout: 100ms
        ---
        apiVersion: chaoskit.dev/v1alpha1
        kind: UpstreamFault
        metadata: {{name: cut-bodies}}
        spec: {{host: cut, reset: {{afterBytes: 10}}, percentage: {{value: 50}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: gone}}
        spec:
          hosts: [gone]
          http:
          - route: [{{destination: {{host: gone}}}}]
            retries: {{attempts: 1, retryOn: connect-failure}}
        ---
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {{name: shop-gateway}}
        spec:
          selector: {{istio: ingressgateway}}
          servers:
          - port: {{number: {gateway_port}, name: http, protocol: HTTP}}
            hosts: [reviews.default.svc.cluster.local, shop.local]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: shop}}
        spec:
          hosts: [shop.local]
          gateways: [shop-gateway]
          http:
          - route: [{{destination: {{host: reviews, subset: v2}}}}]
        """)
    return "---\n".join([*services, policies])


# -- traffic ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    request_id: str
    kind: str
    status: int | None = None
    error: str = ""
    upstream: str | None = None  # the upstream that answered, from the body
    body_len: int | None = None
    cut: bool = False
    hung_up: bool = False  # the client hung up on purpose


#: (kind, weight): the traffic mix.
MIX = [
    ("reviews", 28), ("ratings", 18), ("details", 10), ("flaky", 10), ("slow", 8), ("gone", 3),
    ("cut", 3), ("gateway", 8), ("gateway-unknown-host", 2), ("passthrough", 5), ("post", 3),
    ("hang-up", 2),
]  # fmt: skip


class Traffic:
    def __init__(
        self, proxy: ProxyProcess, ups: dict[str, Upstream], gateway_port: int, seed: int
    ) -> None:
        self.proxy = proxy
        self.ups = ups
        self.gateway = f"http://127.0.0.1:{gateway_port}"
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.local = threading.local()
        self.sessions: list[requests.Session] = []
        self.kinds = [k for k, _ in MIX]
        self.weights = [w for _, w in MIX]

    def session(self) -> requests.Session:
        s = getattr(self.local, "s", None)
        if s is None:
            s = requests.Session()
            s.trust_env = False
            with self.lock:
                self.sessions.append(s)
            self.local.s = s
        return s

    def close(self) -> None:
        with self.lock:
            for s in self.sessions:
                s.close()
            self.sessions.clear()

    def pick(self) -> tuple[str, str, int]:
        with self.lock:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            rid = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            n = self.rng.randrange(0, 160)
        return kind, rid, n

    def one(self) -> Outcome:
        kind, rid, n = self.pick()
        out = Outcome(rid, kind)
        if kind == "hang-up":
            self._hang_up(rid)
            out.hung_up = True
            return out
        proxies = {"http": self.proxy.url}
        headers = {"x-request-id": rid}
        method, data = "GET", None
        if kind == "reviews":
            url = "http://reviews:9080/reviews"
        elif kind == "ratings":
            url = "http://ratings:9080/ratings"
        elif kind == "post":
            url, method, data = "http://ratings:9080/post", "POST", b"x" * 1024
        elif kind == "details":
            url = "http://details:9080/delay/100"
        elif kind == "flaky":
            url = "http://flaky:9080/flaky"
        elif kind == "slow":
            url = f"http://slow:9080/delay/{n}"
        elif kind == "gone":
            url = "http://gone:9080/"
        elif kind == "cut":
            url = "http://cut:9080/cut"
        elif kind == "passthrough":
            url = f"http://127.0.0.1:{self.ups['other'].port}/passthrough"
        elif kind == "gateway":
            url, proxies = f"{self.gateway}/shop", {}
            headers["host"] = "shop.local"
        else:  # gateway-unknown-host
            url, proxies = f"{self.gateway}/nothing", {}
            headers["host"] = "nothing.local"
        try:
            r = self.session().request(
                method, url, headers=headers, data=data, proxies=proxies, timeout=30,
                stream=True, allow_redirects=False,
            )  # fmt: skip
        except requests.RequestException as e:
            out.error = type(e).__name__
            return out
        out.status = r.status_code
        try:
            body = r.raw.read(decode_content=False)
            out.body_len = len(body)
            if r.headers.get("content-length") not in (None, str(len(body))):
                out.cut = True
        except Exception:  # a body cut by an UpstreamFault reset: the status still counts
            out.cut = True
        finally:
            r.close()
        if not out.cut and r.headers.get("content-type") == "application/json":
            with contextlib.suppress(ValueError, KeyError, TypeError):
                out.upstream = json.loads(body)["upstream"]
        return out

    def _hang_up(self, rid: str) -> None:
        """A raw client that sends a slow request and hangs up before the answer."""
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=10) as s:
            s.sendall(
                b"GET http://sleepy:9080/delay/2000 HTTP/1.1\r\nHost: sleepy:9080\r\n"
                b"x-request-id: " + rid.encode() + b"\r\n\r\n"
            )
            threading.Event().wait(0.15)

    def run(self, duration: float, rate: float, workers: int) -> list[Outcome]:
        begin = time.monotonic()
        end = begin + duration
        counter = iter(range(10**9))
        results: list[Outcome] = []
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    i = next(counter)
                start = begin + i / rate
                if start >= end:
                    return
                wait = start - time.monotonic()
                if wait > 0:
                    threading.Event().wait(wait)
                outcome = self.one()
                with lock:
                    results.append(outcome)

        with ThreadPoolExecutor(workers, thread_name_prefix="soak") as pool:
            for f in [pool.submit(worker) for _ in range(workers)]:
                f.result()
        return results


# -- judging ---------------------------------------------------------------------------------


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def upstream_of(record: dict[str, Any], by_port: dict[int, str]) -> str | None:
    host = record.get("upstream_host") or ""
    port = host.rsplit(":", 1)[-1]
    return by_port.get(int(port)) if port.isdigit() else None


def judge(
    outcomes: list[Outcome], log: list[dict[str, Any]], by_port: dict[int, str]
) -> dict[str, Any]:
    sent = {o.request_id: o for o in outcomes}
    lines = Counter(r["request_id"] for r in log)
    records = {r["request_id"]: r for r in log}
    lost = [o for o in outcomes if not o.hung_up and o.status is None]
    duplicated = [rid for rid, n in lines.items() if n > 1]
    missing = [rid for rid in sent if rid not in lines]
    extra = [rid for rid in lines if rid not in sent]
    disagree: list[str] = []
    for o in outcomes:
        rec = records.get(o.request_id)
        if rec is None:
            continue
        if o.hung_up:
            if rec["response_code"] != 0 or "DC" not in rec["response_flags"]:
                disagree.append(f"{o.request_id} hung up, logged {rec['response_code']}")
            continue
        if o.status is None:
            continue
        if rec["response_code"] != o.status:
            disagree.append(f"{o.request_id} {o.kind}: got {o.status}, logged "
                            f"{rec['response_code']}")  # fmt: skip
        elif not o.cut and o.body_len is not None and rec["bytes_sent"] != o.body_len:
            disagree.append(f"{o.request_id} {o.kind}: got {o.body_len} bytes, logged "
                            f"{rec['bytes_sent']}")  # fmt: skip
        elif o.upstream is not None and upstream_of(rec, by_port) != o.upstream:
            disagree.append(f"{o.request_id} {o.kind}: answered by {o.upstream}, logged "
                            f"{rec.get('upstream_host')}")  # fmt: skip
    statuses = Counter(str(o.status) if o.status is not None else (
        "hung-up" if o.hung_up else o.error or "none") for o in outcomes)  # fmt: skip
    flags = Counter(f for r in log for f in r["response_flags"].split(",") if f != "-")
    return {
        "requests": len(outcomes),
        "answered": sum(o.status is not None for o in outcomes),
        "hung_up": sum(o.hung_up for o in outcomes),
        "cut_bodies": sum(o.cut for o in outcomes),
        "log_lines": len(log),
        "lost": [f"{o.request_id} {o.kind}: {o.error}" for o in lost][:20],
        "lost_count": len(lost),
        "duplicated": duplicated[:20],
        "missing": missing[:20],
        "missing_count": len(missing),
        "extra": extra[:20],
        "disagree": disagree[:20],
        "disagree_count": len(disagree),
        "statuses": dict(sorted(statuses.items())),
        "flags": dict(sorted(flags.items())),
        "kinds": dict(sorted(Counter(o.kind for o in outcomes).items())),
    }


def window(samples: list[tuple[float, float, int]], start: float, end: float) -> list:
    return [s for s in samples if start <= s[0] <= end]


def resources(
    samples: list[tuple[float, float, int]], warmup_end: float, traffic_end: float
) -> dict[str, Any]:
    """Start (first sample), after warm-up, end of traffic and peak, for RSS and fds."""
    if not samples:
        return {}
    warm = window(samples, warmup_end - 5, warmup_end + 5) or samples[:1]
    last = window(samples, traffic_end - 10, traffic_end) or samples[-1:]
    during = window(samples, warmup_end, traffic_end) or samples
    rss_warm = statistics.median(s[1] for s in warm)
    rss_end = statistics.median(s[1] for s in last)
    fds_warm = statistics.median(s[2] for s in warm)
    fds_end = statistics.median(s[2] for s in last)
    return {
        "samples": len(samples),
        "rss_mb": {
            "start": round(samples[0][1], 1),
            "after_warmup": round(rss_warm, 1),
            "end": round(rss_end, 1),
            "peak": round(max(s[1] for s in samples), 1),
            "peak_after_warmup": round(max(s[1] for s in during), 1),
            "growth_after_warmup": round(rss_end - rss_warm, 1),
        },
        "fds": {
            "start": samples[0][2],
            "after_warmup": fds_warm,
            "end": fds_end,
            "peak": max(s[2] for s in samples),
            "growth_after_warmup": fds_end - fds_warm,
        },
    }


def series(samples: list[tuple[float, float, int]], points: int = 30) -> list[dict[str, Any]]:
    """About ``points`` evenly spaced samples, for a table or a chart of the run."""
    if not samples:
        return []
    step = max(1, len(samples) // points)
    picked = samples[::step]
    if picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return [{"t": round(t), "rss_mb": round(rss, 1), "fds": fds} for t, rss, fds in picked]


# -- the run ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    duration: float = 600.0
    rate: float = 200.0
    workers: int = 32
    warmup: float | None = None  # default: 10% of the duration, at least 5 s, at most 60 s
    rss_growth_mb: float = 40.0
    fd_slack: int = 64
    seed: int = 20261125
    #: after the traffic, wait this long for pooled upstream connections (30 s keep-alive) to
    #: expire (aiohttp closes them within 2 × 30 s), then count descriptors again; default 65 s
    #: for runs of 2 minutes or more
    idle_wait: float | None = None


def run_soak(cfg: Settings, log: Any = None) -> dict[str, Any]:
    """Run one soak; returns the report (``report["ok"]`` is the verdict)."""

    def say(text: str) -> None:
        if log is not None:
            print(text, file=log, flush=True)

    warmup = cfg.warmup if cfg.warmup is not None else min(60.0, max(5.0, cfg.duration * 0.1))
    ups = {name: Upstream(name) for name in UPSTREAMS}
    for u in ups.values():
        # a hung-up client's upstream request is cancelled mid-answer: the test server's
        # broken pipe is expected, not worth a traceback on the soak's output
        u._server.handle_error = lambda *args: None  # type: ignore[method-assign]
        u.start()
    by_port = {u.port: name for name, u in ups.items()}
    gone_port, gateway_port = free_port(), free_port()
    tmp = tempfile.TemporaryDirectory(prefix="chaoskit-soak-")
    work = Path(tmp.name)
    (work / "mesh.yaml").write_text(mesh_yaml(ups, gone_port, gateway_port))
    access_log = work / "access.jsonl"
    proxy = ProxyProcess([work / "mesh.yaml"], work / "state", access_log=access_log, seed=cfg.seed)
    report: dict[str, Any] = {
        "command": f"python tests/soak/soak.py --duration {cfg.duration:g} --rate {cfg.rate:g}",
        "settings": dataclasses.asdict(cfg) | {"warmup": warmup},
        "sampler": "psutil" if psutil is not None else "/proc",
    }
    sampler: Sampler | None = None
    traffic: Traffic | None = None
    try:
        proxy.wait_ready()
        say(f"proxy ready at {proxy.url} (pid {proxy.pid}); {cfg.duration:g}s at "
            f"{cfg.rate:g} req/s")  # fmt: skip
        sampler = Sampler(proxy.pid).start()
        threading.Event().wait(1.0)
        idle_before = rss_and_fds(proxy.pid)
        traffic = Traffic(proxy, ups, gateway_port, cfg.seed)
        t_start = time.monotonic() - sampler.t0
        began = time.monotonic()
        outcomes = traffic.run(cfg.duration, cfg.rate, cfg.workers)
        elapsed = time.monotonic() - began
        t_end = time.monotonic() - sampler.t0
        traffic.close()
        # every request the proxy saw is logged once its answer is final; hung-up ones may
        # still be finishing: wait (bounded) until the log has caught up
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(read_log(access_log)) < len(outcomes):
            threading.Event().wait(0.2)
        threading.Event().wait(2.0)  # let closed client connections be released
        idle_after = rss_and_fds(proxy.pid)
        with requests.Session() as s:
            s.trust_env = False
            stats = s.get(f"{proxy.admin_url}/stats?format=json", timeout=10).json()["stats"]
        downstream_total = next(
            (x["value"] for x in stats if x["name"] == "http.downstream_rq_total"), None
        )
        idle_wait = cfg.idle_wait if cfg.idle_wait is not None else (
            65.0 if cfg.duration >= 120 else 0.0
        )  # fmt: skip
        after_keepalive = None
        if idle_wait > 0:
            say(f"traffic done; waiting {idle_wait:g}s for pooled upstream connections to expire")
            threading.Event().wait(idle_wait)
            after_keepalive = rss_and_fds(proxy.pid)
        sampler.stop()
        code = proxy.stop()
        log_records = read_log(access_log)
        verdict = judge(outcomes, log_records, by_port)
        res = resources(sampler.samples, t_start + warmup, t_end)
        stderr = proxy.stderr.snapshot()
        bad_lines = [line for line in stderr if BAD_STDERR.search(line)]
        report.update(
            duration_s=round(elapsed, 1),
            achieved_rate=round(len(outcomes) / elapsed, 1) if elapsed else 0,
            **verdict,
            proxy_downstream_rq_total=downstream_total,
            resources=res,
            idle={
                "rss_mb_before": round(idle_before[0], 1),
                "rss_mb_after": round(idle_after[0], 1),
                "fds_before": idle_before[1],
                "fds_after": idle_after[1],
                "waited_s": idle_wait,
                "fds_after_keepalive": after_keepalive[1] if after_keepalive else None,
                "rss_mb_after_keepalive": (
                    round(after_keepalive[0], 1) if after_keepalive else None
                ),
            },
            series=series(sampler.samples),
            stderr_bad=bad_lines[:20],
            stderr_lines=len(stderr),
            stderr_tail=stderr[-10:],
            exit_code=code,
        )
        problems = []
        if verdict["lost_count"]:
            problems.append(f"{verdict['lost_count']} requests got no answer")
        if verdict["duplicated"] or verdict["missing"] or verdict["extra"]:
            problems.append(
                f"log: {len(verdict['duplicated'])} duplicated, {verdict['missing_count']} "
                f"missing, {len(verdict['extra'])} extra request ids"
            )
        if verdict["disagree_count"]:
            problems.append(f"{verdict['disagree_count']} answers disagree with their records")
        if downstream_total != len(log_records):
            problems.append(f"proxy counted {downstream_total} requests, logged {len(log_records)}")
        if res and res["rss_mb"]["growth_after_warmup"] > cfg.rss_growth_mb:
            problems.append(f"RSS grew {res['rss_mb']['growth_after_warmup']} MB after warm-up")
        if res and res["fds"]["growth_after_warmup"] > cfg.fd_slack:
            problems.append(f"fds grew {res['fds']['growth_after_warmup']} after warm-up")
        if idle_after[1] - idle_before[1] > cfg.fd_slack:
            problems.append(f"idle fds {idle_before[1]} → {idle_after[1]}")
        if after_keepalive and after_keepalive[1] - idle_before[1] > 16:
            problems.append(
                f"fds {idle_before[1]} before traffic, {after_keepalive[1]} once idle "
                f"{idle_wait:g}s (pooled connections expired): a leak"
            )
        if bad_lines:
            problems.append(f"{len(bad_lines)} warnings or errors on the proxy's stderr")
        if code != 0:
            problems.append(f"the proxy exited with {code}")
        report["problems"] = problems
        report["ok"] = not problems
    finally:
        if sampler is not None:
            sampler.stop()
        if traffic is not None:
            traffic.close()
        proxy.stop()
        for u in ups.values():
            u.stop()
        tmp.cleanup()
    return report


def summary(report: dict[str, Any]) -> str:
    res = report.get("resources", {})
    rss, fds = res.get("rss_mb", {}), res.get("fds", {})
    lines = [
        f"soak {'PASSED' if report.get('ok') else 'FAILED'}: {report['requests']} requests in "
        f"{report['duration_s']} s ({report['achieved_rate']} req/s)",
        f"  answered {report['answered']}, hung up on purpose {report['hung_up']}, cut bodies "
        f"{report['cut_bodies']}, lost {report['lost_count']}",
        f"  access log {report['log_lines']} lines: duplicated {len(report['duplicated'])}, "
        f"missing {report['missing_count']}, extra {len(report['extra'])}, disagreeing "
        f"{report['disagree_count']}; proxy counted {report['proxy_downstream_rq_total']}",
        f"  statuses {report['statuses']}",
        f"  flags {report['flags']}",
        f"  RSS MB: start {rss.get('start')}, after warm-up {rss.get('after_warmup')}, end "
        f"{rss.get('end')}, peak {rss.get('peak')} (growth after warm-up "
        f"{rss.get('growth_after_warmup')})",
        f"  fds: start {fds.get('start')}, after warm-up {fds.get('after_warmup')}, end "
        f"{fds.get('end')}, peak {fds.get('peak')}; idle before {report['idle']['fds_before']}"
        f", idle after {report['idle']['fds_after']}"
        + (
            f", after {report['idle']['waited_s']:g}s more idle "
            f"{report['idle']['fds_after_keepalive']}"
            if report["idle"]["fds_after_keepalive"] is not None
            else ""
        ),
        f"  stderr: {report['stderr_lines']} lines, {len(report['stderr_bad'])} bad",
    ]
    lines += [f"  PROBLEM: {p}" for p in report.get("problems", [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    p.add_argument("--rate", type=float, default=200.0, help="requests per second")
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--warmup", type=float, help="seconds before RSS and fds are judged")
    p.add_argument("--rss-growth-mb", type=float, default=40.0)
    p.add_argument("--fd-slack", type=int, default=64)
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument(
        "--idle-wait", type=float, help="seconds idle after traffic before fds are counted again"
    )
    p.add_argument("--json", type=Path, help="also write the full report here")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= 24 * 3600 or not 1 <= args.rate <= 2000:
        p.error("--duration must be 1..86400 s and --rate 1..2000 req/s")
    cfg = Settings(
        duration=args.duration, rate=args.rate, workers=args.workers, warmup=args.warmup,
        rss_growth_mb=args.rss_growth_mb, fd_slack=args.fd_slack, seed=args.seed,
        idle_wait=args.idle_wait,
    )  # fmt: skip
    report = run_soak(cfg, log=sys.stderr)
    print(summary(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
