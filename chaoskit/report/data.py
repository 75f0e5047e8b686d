"""What the report shows, computed from a journal without drawing anything.

Kept apart from the charts so the numbers (and the JUnit renderer, which needs none of
matplotlib) can be tested and reused on their own, and so the HTML tables and the pictures
are guaranteed to agree: both read the same figures from here.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex

from chaoskit.experiment.journal import (
    AFTER,
    BEFORE,
    METHOD,
    FaultWindow,
    Journal,
    Sample,
    summarize,
)
from chaoskit.records import flag_meanings, order_flags

#: The counters a reader scans for "did the mesh's resilience fire?", in display order.
#: Matched on the last part of the name, so ``cluster.<any.dotted.name>.upstream_rq_retry``
#: sums over clusters while ``upstream_rq_retry_overflow`` is not counted as a retry.
#: Envoy's meanings: *retries* were scheduled and sent; a *retry success* is a retry whose
#: outcome was final (not retried again); *retry limit exceeded* is a retriable outcome with
#: no ``attempts`` left (``URX``); a *retry overflow* is a retry the ``maxRetries`` breaker or
#: retry budget refused (``UO``) — the last two never reached the upstream.
COUNTERS: tuple[tuple[str, str], ...] = (
    ("upstream_rq_retry", "retries"),
    ("upstream_rq_retry_success", "retry successes"),
    ("upstream_rq_retry_limit_exceeded", "retry limit exceeded"),
    ("upstream_rq_retry_overflow", "retry overflows"),
    ("upstream_rq_timeout", "route timeouts"),
    ("upstream_rq_per_try_timeout", "per-try timeouts"),
    ("upstream_rq_pending_overflow", "pending overflows"),
    ("outlier_detection.ejections_enforced_total", "ejections"),
    ("fault.delays_injected", "fault delays"),
    ("fault.aborts_injected", "fault aborts"),
    ("upstream_fault.injected", "upstream faults"),
)

#: Status classes in legend order, with colours from the Okabe–Ito palette (colour-blind safe).
STATUS_CLASSES: tuple[tuple[str, str], ...] = (
    ("2xx", "#009E73"),
    ("3xx", "#56B4E9"),
    ("4xx", "#E69F00"),
    ("5xx", "#D55E00"),
    ("no answer", "#000000"),
)

_KNOWN_ORDER = (BEFORE, METHOD, AFTER)


def status_class(status: int) -> str:
    """``0`` means the client got no HTTP answer at all (connection error, its own timeout)."""
    if not status:
        return "no answer"
    return f"{status // 100}xx" if 200 <= status < 600 else "no answer"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile, the same rule the hypothesis checks use, so numbers agree."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def phase_names(journal: Journal) -> list[str]:
    """Phases in run order: the journal's own, then any only seen in samples (never dropped)."""
    names = [p.name for p in journal.phases]
    extra = {s.phase for s in journal.samples} - set(names)
    known = [n for n in _KNOWN_ORDER if n in extra]
    return names + known + sorted(extra - set(known))


def counters(journal: Journal) -> dict[str, dict[str, float]]:
    """``{label: {phase: total}}`` for :data:`COUNTERS`, summed over clusters; zero rows kept."""
    out: dict[str, dict[str, float]] = {label: {} for _, label in COUNTERS}
    for phase in journal.phases:
        for stat, label in COUNTERS:
            total = sum(v for k, v in phase.stats.items() if k == stat or k.endswith("." + stat))
            out[label][phase.name] = out[label].get(phase.name, 0.0) + total
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseFigures:
    """One phase's traffic in numbers: the rows of the "at a glance" table."""

    name: str
    start: float
    end: float
    requests: int
    answered_2xx: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    checks_ok: int
    checks: int


def phase_figures(journal: Journal) -> list[PhaseFigures]:
    by_phase = samples_by_phase(journal)
    rows = []
    for name in phase_names(journal):
        phase = journal.phase(name)
        samples = by_phase.get(name, [])
        lat = [s.latency for s in samples]
        start = phase.start if phase else min((s.t for s in samples), default=0.0)
        end = phase.end if phase and phase.end else max((s.t for s in samples), default=start)
        checks = phase.checks if phase else []
        rows.append(
            PhaseFigures(
                name,
                start,
                end,
                len(samples),
                sum(200 <= s.status < 300 for s in samples),
                percentile(lat, 50) if lat else None,
                percentile(lat, 95) if lat else None,
                percentile(lat, 99) if lat else None,
                max(lat) if lat else None,
                sum(c.ok for c in checks),
                len(checks),
            )
        )
    return rows


def phase_counts(journal: Journal) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Status and flag counts per phase: the journal's own, else counted from its samples."""
    by_phase = samples_by_phase(journal)
    statuses: dict[str, dict[str, int]] = {}
    flags: dict[str, dict[str, int]] = {}
    for name in phase_names(journal):
        phase = journal.phase(name)
        counted = summarize(by_phase.get(name, []))
        statuses[name] = dict(phase.statuses) if phase and phase.statuses else counted[0]
        flags[name] = dict(phase.flags) if phase and phase.flags else counted[1]
    return statuses, flags


@dataclasses.dataclass(frozen=True, slots=True)
class FlagRow:
    """One response flag the run saw: its code, Envoy's name, its meaning, counts per phase."""

    code: str
    long_name: str
    meaning: str
    counts: dict[str, int]


def flag_legend(journal: Journal) -> list[FlagRow]:
    """Every response flag the run recorded, in Envoy's order, explained from
    :class:`chaoskit.records.ResponseFlag` (the one place flags are described)."""
    _, flags = phase_counts(journal)
    seen = {f for per in flags.values() for f, n in per.items() if n}
    known = {f.value: f for f in flag_meanings(seen)}
    rows = []
    for code in order_flags(seen):
        flag = known.get(code)
        counts = {phase: per[code] for phase, per in flags.items() if per.get(code)}
        if flag is None:
            rows.append(FlagRow(code, "", "not an Envoy response flag chaoskit knows", counts))
        else:
            rows.append(FlagRow(code, flag.long_name, flag.meaning, counts))
    return rows


def stopped_in(journal: Journal) -> str:
    """Where a run that broke or was interrupted stopped, in words: in or after a phase, or
    before the first one (while the proxy and the apps were starting)."""
    if not journal.phases:
        return "before the first phase, while the proxy and the apps were starting"
    last = journal.phases[-1]
    return f"after {last.name}" if last.end else f"during {last.name}"


def samples_by_phase(journal: Journal) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = {}
    for s in journal.samples:
        out.setdefault(s.phase, []).append(s)
    return out


def fault_span(journal: Journal, fault: FaultWindow) -> tuple[float, float]:
    """A window still open when the run stopped is drawn to the end of what was seen."""
    if fault.end is not None:
        return fault.start, fault.end
    method = journal.phase(METHOD)
    ends = [journal.duration, fault.start]
    if method is not None and method.end:
        ends.append(method.end)
    ends.extend(s.t + s.latency for s in journal.samples)
    return fault.start, max(ends)


def downsample(samples: list[Sample], limit: int) -> list[Sample]:
    """At most ``limit`` samples, chosen so the story survives: failures are kept whole while
    they fit in half the budget, successes fill the rest, and either side is thinned by an even
    stride when it must be. Deterministic, so the same journal draws the same dots.
    """
    if len(samples) <= limit:
        return samples
    bad = [s for s in samples if not 200 <= s.status < 300]
    good = [s for s in samples if 200 <= s.status < 300]
    if len(bad) >= limit // 2 and len(good) >= limit // 2:
        keep_bad, keep_good = limit // 2, limit - limit // 2
    elif len(bad) < limit // 2:
        keep_bad, keep_good = len(bad), limit - len(bad)
    else:
        keep_bad, keep_good = limit - len(good), len(good)
    return sorted(_stride(bad, keep_bad) + _stride(good, keep_good), key=lambda s: s.t)


def _stride(items: list[Sample], n: int) -> list[Sample]:
    if n >= len(items):
        return list(items)
    if n <= 0:
        return []
    return [items[i * len(items) // n] for i in range(n)]


def reproduce_command(journal: Journal) -> str:
    """The exact command that replays this run: same file, same seed (quoted for a shell)."""
    return f"chaoskit run {shlex.quote(journal.file or 'EXPERIMENT.yaml')} --seed {journal.seed}"


def fmt_seconds(value: float | None) -> str:
    """Measured times, at a precision a person compares: ``0.0123`` → ``"12.3 ms"``."""
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def printable(text: object) -> str:
    """Text safe for XML and HTML: control characters (a subprocess's ANSI colours, a stray
    NUL) are shown as ``\\xNN`` instead of making the file unparsable."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
