"""Small statistics: medians and spread over repeats, paired ratios, the binomial interval."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def median(values: Sequence[float | None]) -> float | None:
    clean = [float(v) for v in values if v is not None and not math.isnan(v)]
    return float(statistics.median(clean)) if clean else None


def spread(values: Sequence[float | None], digits: int = 3) -> dict[str, Any]:
    """Median, min and max of repeated measurements (and how many there were)."""
    clean = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {
        "n": len(clean),
        "median": round(float(statistics.median(clean)), digits),
        "min": round(min(clean), digits),
        "max": round(max(clean), digits),
    }


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile, ``q`` in 0–100."""
    v = sorted(values)
    if not v:
        return None
    rank = max(1, min(len(v), math.ceil(q / 100 * len(v))))
    return v[rank - 1]


def _log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
    )  # fmt: skip


def binomial_interval(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The central ``confidence`` range of Binomial(n, p): counts ``[lo, hi]`` such that
    P(X < lo) <= (1-c)/2 and P(X > hi) <= (1-c)/2 (exact, from the pmf)."""
    tail = (1 - confidence) / 2
    cdf = 0.0
    lo: int | None = None
    hi = n
    for k in range(n + 1):
        cdf += math.exp(_log_pmf(k, n, p))
        if lo is None and cdf > tail:
            lo = k
        if cdf >= 1 - tail:
            hi = k
            break
    return (lo if lo is not None else 0), hi
