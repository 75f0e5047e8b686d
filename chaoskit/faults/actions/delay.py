"""``delay``: the attempt starts late, by a fixed time or one drawn per attempt.

One draw per selected attempt, from the fault's own seeded stream, so the same seed and the same
attempt sequence give the same delays. Every result is in seconds and never negative.

- ``fixed``: ``fixedDelay``;
- ``uniform``: uniform in ``[min, max]``;
- ``normal``: ``mean + stddev·Z`` clipped at 0 (so with ``mean`` close to 0 the mean of the
  *applied* delays is above ``mean``);
- ``lognormal``: ``median·exp(sigma·Z)``, whose median is ``median`` and whose mean is
  ``median·exp(sigma²/2)`` — the long right tail real latencies have.

Delays of every selected fault add up and run before anything else, so they count against the
per-try and route timeouts.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from chaoskit.config.durations import format_duration
from chaoskit.config.fields import Fields
from chaoskit.faults.actions.base import Action, Examples, Stage, no_own_percentage

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft

Distribution = Literal["fixed", "uniform", "normal", "lognormal"]
DISTRIBUTIONS = ("uniform", "normal", "lognormal")
_PARAMS = {
    "uniform": ("min", "max"),
    "normal": ("mean", "stddev"),
    "lognormal": ("median", "sigma"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class FaultDelay:
    """A fixed delay, or one drawn per attempt; only the fields of ``distribution`` are set."""

    distribution: Distribution
    fixed_delay: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    stddev: float | None = None
    median: float | None = None
    sigma: float | None = None


def parse_delay(f: Fields) -> FaultDelay | None:
    """The ``delay`` mapping: ``fixedDelay`` or one distribution with its parameters."""
    fixed = f.duration("fixedDelay")
    dist = f.enum("distribution", DISTRIBUTIONS)
    values: dict[str, float | None] = {
        key: f.duration(key, allow_zero=True) for key in ("min", "max", "mean", "stddev")
    }
    values["median"] = f.duration("median")
    values["sigma"] = f.number("sigma")
    no_own_percentage(f)
    f.done()
    if f.has("fixedDelay") and f.has("distribution"):
        f.error(None, "only one of fixedDelay, distribution may be set")
        return None
    if not f.has("fixedDelay") and not f.has("distribution"):
        f.error(None, "delay needs fixedDelay or distribution (uniform, normal, lognormal)")
        return None
    if fixed is None and dist is None:
        return None  # already reported
    wanted = _PARAMS[dist] if dist is not None else ()
    ok = True
    for d, params in _PARAMS.items():
        for key in params:
            if f.has(key) and key not in wanted:
                used = f"distribution: {dist}" if dist else "fixedDelay"
                f.error(key, f"{key} is not used with {used} (it belongs to distribution: {d})")
                ok = False
    for key in wanted:
        if not f.has(key):
            f.error(None, f'distribution {dist} needs "{key}"')
        ok = ok and values[key] is not None
    sigma = values["sigma"]
    if dist == "lognormal" and sigma is not None and sigma <= 0:
        f.error("sigma", f"sigma must be greater than 0, not {sigma:g}")
        ok = False
    lo, hi = values["min"], values["max"]
    if dist == "uniform" and lo is not None and hi is not None and lo > hi:
        f.error("max", f"max ({hi:g}s) is less than min ({lo:g}s)")
        ok = False
    if not ok:
        return None
    if dist is None:
        return FaultDelay("fixed", fixed_delay=fixed)
    return FaultDelay(
        cast(Distribution, dist),
        minimum=lo,
        maximum=hi,
        mean=values["mean"],
        stddev=values["stddev"],
        median=values["median"],
        sigma=sigma,
    )


def parse(spec: Fields) -> FaultDelay | None:
    return parse_delay(d) if (d := spec.obj("delay")) is not None else None


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


def fold(plan: PlanDraft, delay: FaultDelay, rng: random.Random) -> None:
    plan.delay += sample_delay(delay, rng)


def duration_text(value: object, what: str) -> str:
    """A keyword's duration as YAML: ``"250ms"`` as is, a number of seconds formatted."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"{what} must be a duration such as '250ms' or seconds, not {value!r}")
    return value if isinstance(value, str) else format_duration(float(value))


def from_keyword(value: Any) -> dict[str, Any]:
    """``"250ms"`` or seconds → ``{fixedDelay: …}``; a dict (a distribution) as is."""
    if isinstance(value, Mapping):
        return dict(value)
    return {"fixedDelay": duration_text(value, "delay")}


ACTION: Action[FaultDelay] = Action(
    name="delay",
    attr="delay",
    stage=Stage.DELAY,
    parse=parse,
    fold=fold,
    doc=(
        "`{fixedDelay: D}`, or a distribution drawn per attempt: "
        "`{distribution: uniform, min, max}` (max ≥ min), `{distribution: normal, mean, stddev}`, "
        "`{distribution: lognormal, median, sigma}` (sigma > 0). Parameters of another "
        "distribution are errors."
    ),
    from_keyword=from_keyword,
    examples=lambda bounds: Examples(
        range(1, bounds.max_delay_ms + 1), lambda ms: {"fixedDelay": f"{ms}ms"}
    ),
    mildness=10,
)
