import math
import random

import pytest

from chaoskit.rng import PER_MILLION, Seeds, derive, draw_percentage, new_seed, parse_seed


def test_streams_depend_only_on_seed_and_name():
    a, b = Seeds(42), Seeds(42)
    b.stream("other").random()  # using another stream must not shift this one
    assert [a.stream("route").random() for _ in range(5)] == [
        b.stream("route").random() for _ in range(5)
    ]
    assert derive(42, "route") != derive(43, "route") != derive(42, "lb")


def test_reset_replays():
    s = Seeds(1)
    first = [s.stream("x").random() for _ in range(3)]
    s.reset()
    assert [s.stream("x").random() for _ in range(3)] == first


def test_parse_seed():
    assert parse_seed("42") == 42
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(ValueError):
            parse_seed(bad)
    assert 0 <= new_seed() < 2**31


# -- draw_percentage: Envoy's FractionalPercent rule ------------------------------------------


class Fixed(random.Random):
    """A stream whose integer draws are all ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(0)
        self.value = value

    def randrange(self, *args: object, **kw: object) -> int:  # type: ignore[override]
        return self.value


@pytest.mark.parametrize(
    ("percentage", "draw", "fires"),
    [
        (0.0001, 0, True),  # one in a million: only the lowest draw
        (0.0001, 1, False),
        (0.00004, 0, False),  # rounds to zero per million: never
        (0.0, 0, False),
        (99.9999, 999_999, False),
        (100.0, 999_999, True),
        (25.0, 249_999, True),
        (25.0, 250_000, False),
    ],
)
def test_percentage_is_per_million(percentage: float, draw: int, fires: bool) -> None:
    assert draw_percentage(Fixed(draw), percentage) is fires


def test_percentage_0_is_exactly_never_and_100_exactly_always() -> None:
    rng = random.Random(5)
    assert not any(draw_percentage(rng, 0) for _ in range(20_000))
    assert all(draw_percentage(rng, 100) for _ in range(20_000))


def test_percentage_rate_within_binomial_bounds() -> None:
    rng, n, p = random.Random(11), 100_000, 0.125
    hits = sum(draw_percentage(rng, 12.5) for _ in range(n))
    # Binomial(100000, 0.125): σ = √(n·p·(1-p)) ≈ 104.6; accept the mean ± 4.5σ (±471).
    assert abs(hits - n * p) <= 4.5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("percentage", [0, 0.00004, 50, 100])
def test_percentage_draws_exactly_once_whatever_its_value(percentage: float) -> None:
    """A stream shared by several decisions advances alike whatever one percentage is, so
    setting one to 0 or 100 does not shift the draws of the next decision."""
    used, fresh = random.Random(3), random.Random(3)
    draw_percentage(used, percentage)
    fresh.randrange(PER_MILLION)
    assert used.getstate() == fresh.getstate()
