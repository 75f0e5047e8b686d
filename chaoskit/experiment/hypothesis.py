"""Checking a hypothesis: success rate and latency over a phase's samples, and probes.

Every check says what was expected, what was observed, and — when it fails — the evidence in a
sentence a person can act on.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

import requests

from chaoskit.config.durations import format_duration
from chaoskit.config.experiment import Hypothesis, Probe
from chaoskit.experiment.journal import Check, Sample
from chaoskit.experiment.traffic import Endpoint


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _fmt_rate(x: float) -> str:
    return f"{x * 100:.4g}%"


def _outcome(sample: Sample) -> str:
    """How a failed request ended, with the proxy's response flags when it recorded any
    (``503 UF,URX``): the flags say *why* (explained where they are printed)."""
    what = str(sample.status) if sample.status else (sample.error or "error")
    return f"{what} {','.join(sample.flags)}" if sample.flags else what


def check_samples(phase: str, hypothesis: Hypothesis, samples: list[Sample]) -> list[Check]:
    checks: list[Check] = []
    if hypothesis.success_rate is not None:
        allowed = set(hypothesis.allowed_statuses or (200,))
        if not samples:
            checks.append(
                Check(
                    phase,
                    "success rate",
                    "success_rate",
                    f">= {_fmt_rate(hypothesis.success_rate)}",
                    "no requests",
                    False,
                    "the phase sent no traffic",
                )
            )
        else:
            good = sum(s.status in allowed for s in samples)
            rate = good / len(samples)
            bad = Counter(_outcome(s) for s in samples if s.status not in allowed)
            detail = (
                ""
                if rate >= hypothesis.success_rate
                else (
                    f"{len(samples) - good} of {len(samples)} requests failed: "
                    + ", ".join(f"{k} ×{v}" for k, v in bad.most_common())
                )
            )
            checks.append(
                Check(
                    phase,
                    f"success rate (statuses {', '.join(map(str, sorted(allowed)))})",
                    "success_rate",
                    f">= {_fmt_rate(hypothesis.success_rate)}",
                    f"{_fmt_rate(rate)} of {len(samples)}",
                    rate >= hypothesis.success_rate,
                    detail,
                )
            )
    answered = [s.latency for s in samples if s.status]
    for key, bound in hypothesis.latency.items():
        name = f"latency {key}"
        if not answered:
            checks.append(
                Check(
                    phase,
                    name,
                    "latency",
                    f"<= {format_duration(bound)}",
                    "no answered requests",
                    False,
                    "nothing to measure",
                )
            )
            continue
        value = max(answered) if key == "max" else percentile(answered, float(key[1:]))
        slow = sum(latency > bound for latency in answered)
        detail = (
            "" if value <= bound else f"{slow} of {len(answered)} answered requests took longer"
        )
        checks.append(
            Check(
                phase,
                name,
                "latency",
                f"<= {format_duration(bound)}",
                f"{value:.3f}s",
                value <= bound,
                detail,
            )
        )
    return checks


def run_probe(phase: str, probe: Probe, endpoint: Endpoint, timeout: float = 30.0) -> Check:
    """Send the probe once and compare the answer with its expectations."""
    target = endpoint.target
    proxies = {"http": endpoint.proxy, "https": endpoint.proxy} if endpoint.proxy else {}
    expected = _describe(probe)
    start = time.monotonic()
    try:
        with requests.Session() as s:
            s.trust_env = False
            r = s.request(
                target.method,
                endpoint.url,
                headers=dict(target.headers),
                data=target.body,
                proxies=proxies,
                timeout=timeout,
            )
    except requests.RequestException as e:
        latency = time.monotonic() - start
        return Check(
            phase,
            f"probe {probe.name}",
            "probe",
            expected,
            f"no answer after {latency:.2f}s",
            False,
            f"{type(e).__name__}: {e}",
        )
    latency = time.monotonic() - start
    problems = []
    if probe.status and r.status_code not in probe.status:
        problems.append(f"status {r.status_code}")
    text = r.text
    problems += [f"body lacks {s!r}" for s in probe.body_contains if s not in text]
    problems += [f"body contains {s!r}" for s in probe.body_not_contains if s in text]
    if probe.max_latency is not None and latency > probe.max_latency:
        problems.append(f"took {latency:.2f}s > {format_duration(probe.max_latency)}")
    observed = f"{r.status_code} in {latency:.2f}s"
    return Check(
        phase, f"probe {probe.name}", "probe", expected, observed, not problems, "; ".join(problems)
    )


def _describe(probe: Probe) -> str:
    parts = []
    if probe.status:
        parts.append("status " + "/".join(map(str, probe.status)))
    parts += [f"contains {s!r}" for s in probe.body_contains]
    parts += [f"not {s!r}" for s in probe.body_not_contains]
    if probe.max_latency is not None:
        parts.append(f"within {format_duration(probe.max_latency)}")
    return ", ".join(parts) or "any answer"


def check_phase(
    phase: str,
    hypothesis: Hypothesis,
    samples: list[Sample],
    resolve: Callable[[Probe], Endpoint],
    timeout: float = 30.0,
) -> list[Check]:
    checks = check_samples(phase, hypothesis, samples)
    checks += [run_probe(phase, p, resolve(p), timeout) for p in hypothesis.probes]
    return checks
