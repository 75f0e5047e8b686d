"""Journals built by hand: a held run, a deviated one under faults, and one that broke early.

Strings carry ``<``, ``&`` and quotes on purpose, so every renderer's escaping is exercised.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from chaoskit.experiment.journal import (
    AFTER,
    BEFORE,
    DEVIATED,
    ERROR,
    HELD,
    METHOD,
    Check,
    FaultWindow,
    Journal,
    Phase,
    Sample,
    StepResult,
    summarize,
)

VERSIONS = {"chaoskit": "0.1.0", "python": "3.11.9", "mitmproxy": "12.1.1"}
CLUSTER = "cluster.outbound|9080||reviews.default.svc.cluster.local"
CONFIG = {
    "experiments/checkout.yaml": (
        "apiVersion: chaoskit.dev/v1alpha1\nkind: Experiment\nmetadata: {name: checkout}\n"
        'spec:\n  title: "Checkout <survives> reviews & ratings faults"\n'
        "  description: <script>alert(1)</script>\n"
    ),
    "mesh/reviews.yaml": "kind: VirtualService\nspec:\n  http:\n  - timeout: 1s\n",
}


def _journal(status: str, **kw: object) -> Journal:
    base: dict[str, object] = {
        "experiment": "checkout",
        "title": "Checkout survives reviews & ratings faults",
        "file": "experiments/checkout.yaml",
        "seed": 42,
        "started_at": "2025-01-02T03:04:05Z",
        "versions": dict(VERSIONS),
        "status": status,
        "config": dict(CONFIG),
    }
    base.update(kw)
    return Journal(**base)  # type: ignore[arg-type]


def _sample(rng: random.Random, t: float, phase: str, faulted: bool) -> Sample:
    latency = rng.lognormvariate(-4.0, 0.4)  # ~20 ms
    status, flags, error, retries = 200, (), "", 0
    if faulted:
        roll = rng.random()
        if roll < 0.25:
            status, flags, retries = 503, ("URX", "UF"), 2
        elif roll < 0.35:
            status, latency, error = 0, 2.0, "client timeout after 2.0s"
        elif roll < 0.6:
            latency += 1.0
            flags = ("DI",)
    return Sample(t, phase, "GET http://reviews:9080/<id>?a=1&b=2", status, latency, error,
                  f"req-{t:.3f}", flags, retries, faulted)  # fmt: skip


def deviated(n: int) -> Journal:
    """50 s run: faults on from 15 s (one ends at 30 s, the other is never closed)."""
    rng = random.Random(1234)
    bounds = [(BEFORE, 0.0, 10.0), (METHOD, 10.0, 40.0), (AFTER, 40.0, 50.0)]
    samples = []
    for i in range(n):
        t = 50.0 * i / n
        name = next(p for p, a, b in bounds if a <= t < b)
        samples.append(_sample(rng, t, name, name == METHOD and 15.0 <= t < 35.0))
    phases = []
    for name, a, b in bounds:
        statuses, flags = summarize([s for s in samples if s.phase == name])
        phases.append(Phase(name, a, b, statuses=statuses, flags=flags))
    phases[0].checks = [Check(BEFORE, "success rate", "success_rate", ">= 99%", "100%", True)]
    phases[1].checks = [
        Check(METHOD, "success rate", "success_rate", ">= 99%", "71.2%", False,
              "503 × 120, error × 40: <retries> exhausted & client gave up"),
        Check(METHOD, "latency p95", "latency", "p95 < 1s", "2s", False, 'p95 "2s" over budget'),
    ]  # fmt: skip
    phases[2].checks = [Check(AFTER, "probe /health", "probe", "status 200", "200", True)]
    phases[1].stats = {
        f"{CLUSTER}.upstream_rq_retry": 40.0,
        f"{CLUSTER}.upstream_rq_retry_overflow": 2.0,
        "cluster.ratings.upstream_rq_retry": 5.0,
        f"{CLUSTER}.upstream_rq_per_try_timeout": 12.0,
        f"{CLUSTER}.upstream_rq_timeout": 3.0,
        f"{CLUSTER}.outlier_detection.ejections_enforced_total": 1.0,
        "fault.delays_injected": 30.0,
        "fault.aborts_injected": 25.0,
        "upstream_fault.injected": 4.0,
    }
    phases[2].stats = {f"{CLUSTER}.upstream_rq_retry": 1.0}
    phases[1].notes = ["outlier detection ejected 10.0.0.7:9080 (consecutive_5xx) for 30s"]
    return _journal(
        DEVIATED,
        exit_code=1,
        duration=50.0,
        phases=phases,
        samples=samples,
        faults=[
            FaultWindow("delay <reviews>", 15.0, 30.0, ("VirtualService/default/reviews",)),
            FaultWindow("abort ratings & co", 20.0, None, ("UpstreamFault/default/ratings",)),
        ],
        rollbacks=[
            StepResult("restore mesh", True),
            StepResult("flush cache", False, "exit 1: redis-cli: <connection refused>"),
        ],
        lessons=[
            "client gave up after 2.0s; the route allows 3 × 1s attempts — retries here are wasted"
        ],
    )


@pytest.fixture
def make_deviated() -> Callable[[int], Journal]:
    return deviated


@pytest.fixture
def deviated_journal() -> Journal:
    return deviated(2000)


def held() -> Journal:
    """A short run where everything held, no fault windows and no counters."""
    rng = random.Random(7)
    samples = [Sample(i * 0.1, BEFORE, "GET http://shop/", 200, rng.uniform(0.01, 0.03))
               for i in range(50)]  # fmt: skip
    phases = [
        Phase(
            BEFORE,
            0.0,
            5.0,
            [Check(BEFORE, "success rate", "success_rate", ">= 99%", "100%", True)],
            {"200": 50},
        ),
        Phase(METHOD, 5.0, 6.0),
        Phase(AFTER, 6.0, 7.0),
    ]
    return _journal(HELD, duration=7.0, phases=phases, samples=samples)


def errored() -> Journal:
    """A run that broke before its first phase: no phases, no samples."""
    return _journal(
        ERROR,
        exit_code=3,
        duration=0.4,
        error="app 'shop' never became ready: GET http://127.0.0.1:8080/health <refused>\x1b[0m",
    )


@pytest.fixture
def held_journal() -> Journal:
    return held()


@pytest.fixture
def error_journal() -> Journal:
    return errored()
