"""Draw the delay of one attempt from a :class:`~chaoskit.config.upstream_fault.FaultDelay`.

One draw per selected attempt, from the fault's own seeded stream, so the same seed and the same
attempt sequence give the same delays. Every result is in seconds and never negative.

- ``fixed``: ``fixedDelay``;
- ``uniform``: uniform in ``[min, max]``;
- ``normal``: ``mean + stddev·Z`` clipped at 0 (so with ``mean`` close to 0 the mean of the
  *applied* delays is above ``mean``);
- ``lognormal``: ``median·exp(sigma·Z)``, whose median is ``median`` and whose mean is
  ``median·exp(sigma²/2)`` — the long right tail real latencies have.
"""

from __future__ import annotations

import math
import random

from chaoskit.config.upstream_fault import FaultDelay


def sample_delay(delay: FaultDelay, rng: random.Random) -> float:
    """Seconds to wait before the attempt goes on (one draw from ``rng`` unless fixed)."""
    kind = delay.distribution
    if kind == "fixed":
        return max(0.0, _param(delay.fixed_delay, "fixedDelay"))
    if kind == "uniform":
        low = _param(delay.minimum, "min")
        high = _param(delay.maximum, "max")
        return max(0.0, low + (high - low) * rng.random())
    if kind == "normal":
        mean = _param(delay.mean, "mean")
        return max(0.0, rng.gauss(mean, _param(delay.stddev, "stddev")))
    if kind == "lognormal":
        median = _param(delay.median, "median")
        sigma = _param(delay.sigma, "sigma")
        return median * math.exp(sigma * rng.gauss(0.0, 1.0))
    raise ValueError(f"unknown delay distribution {kind!r}")


def _param(value: float | None, name: str) -> float:
    # The parser only builds a FaultDelay with every parameter of its distribution.
    if value is None:
        raise ValueError(f"delay distribution parameter {name!r} is missing")
    return value
