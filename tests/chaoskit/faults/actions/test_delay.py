"""Delay distributions: seeded, in seconds, never negative, with the configured centre."""

from __future__ import annotations

import math
import statistics

import pytest

from chaoskit.config.upstream_fault import FaultDelay
from chaoskit.faults.actions.delay import sample_delay
from tests.chaoskit.faults.helpers import fault, rng

N = 2_000


def delay(yaml: str) -> FaultDelay:
    d = fault(f"host: payments\ndelay: {yaml}\n").delay
    assert d is not None
    return d


def samples(d: FaultDelay, seed: int = 7) -> list[float]:
    r = rng(seed)
    return [sample_delay(d, r) for _ in range(N)]


def test_fixed_is_exact_and_draws_nothing() -> None:
    r = rng()
    before = r.getstate()
    assert sample_delay(delay("{fixedDelay: 250ms}"), r) == 0.25
    assert r.getstate() == before


def test_uniform() -> None:
    xs = samples(delay("{distribution: uniform, min: 100ms, max: 300ms}"))
    assert all(0.1 <= x <= 0.3 for x in xs)
    # σ = 0.2/√12 ≈ 0.0577 s, so the standard error of the mean over 2,000 is ≈ 0.0013 s: ±5 SE.
    assert statistics.fmean(xs) == pytest.approx(0.2, abs=0.0065)
    assert min(xs) < 0.105 and max(xs) > 0.295  # spans the interval


def test_uniform_with_equal_bounds_is_fixed() -> None:
    assert set(samples(delay("{distribution: uniform, min: 1s, max: 1s}"))) == {1.0}


def test_normal() -> None:
    xs = samples(delay("{distribution: normal, mean: 100ms, stddev: 20ms}"))
    # Standard error of the mean: 0.02/√2000 ≈ 0.00045 s; ±5.5 SE.
    assert statistics.fmean(xs) == pytest.approx(0.1, abs=0.0025)
    assert statistics.stdev(xs) == pytest.approx(0.02, rel=0.1)
    assert min(xs) >= 0


def test_normal_is_clipped_at_zero() -> None:
    xs = samples(delay("{distribution: normal, mean: 0s, stddev: 10ms}"))
    assert min(xs) == 0.0
    zeros = sum(x == 0.0 for x in xs)
    # Half the draws fall below 0: binomial(2000, 1/2) has σ ≈ 22.4; ±4.5σ ≈ ±101.
    assert abs(zeros - N / 2) < 101


def test_lognormal() -> None:
    xs = samples(delay("{distribution: lognormal, median: 200ms, sigma: 0.5}"))
    assert min(xs) > 0
    # SE of the sample median = m·σ·√(2π)/(2√n) ≈ 0.0028 s; ±5 SE.
    assert statistics.median(xs) == pytest.approx(0.2, abs=0.014)
    # Mean m·exp(σ²/2) ≈ 0.2266 s, sd ≈ 0.121 s, SE ≈ 0.0027 s; ±5 SE.
    assert statistics.fmean(xs) == pytest.approx(0.2 * math.exp(0.125), abs=0.0135)
    assert max(xs) > 0.5  # the long right tail


@pytest.mark.parametrize(
    "yaml",
    [
        "{distribution: uniform, min: 0s, max: 50ms}",
        "{distribution: normal, mean: 10ms, stddev: 50ms}",
        "{distribution: lognormal, median: 1ms, sigma: 3}",
    ],
)
def test_never_negative(yaml: str) -> None:
    assert min(samples(delay(yaml))) >= 0


@pytest.mark.parametrize(
    "yaml",
    [
        "{distribution: uniform, min: 100ms, max: 300ms}",
        "{distribution: normal, mean: 100ms, stddev: 20ms}",
        "{distribution: lognormal, median: 200ms, sigma: 0.5}",
    ],
)
def test_same_seed_same_delays(yaml: str) -> None:
    d = delay(yaml)
    assert samples(d, seed=3) == samples(d, seed=3)
    assert samples(d, seed=3) != samples(d, seed=4)


def test_missing_parameter_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="median"):
        sample_delay(FaultDelay("lognormal", sigma=0.5), rng())
