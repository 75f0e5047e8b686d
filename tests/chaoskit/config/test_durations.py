import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.config.durations import (
    check_istio_duration,
    check_percentage,
    format_duration,
    parse_duration,
    per_million,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("100us", 1e-4),
        (".5s", 0.5),
        ("2h45m", 9900.0),
    ],
)
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["", "5", "1.5", "-1s", "1d", "s", "1 s", 5, 1.5, True, None, "1e3s"]
)
def test_bad_durations_raise_value_error(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_istio_duration_rules():
    assert check_istio_duration(0.001) is None
    assert check_istio_duration(0.0) == "duration must be greater than 1ms"
    assert check_istio_duration(0.0, allow_zero=True) is None
    assert check_istio_duration(0.0005) == "duration must be greater than 1ms"
    assert check_istio_duration(0.0015) == "only durations to ms precision are supported"


def test_percentages():
    assert check_percentage(0) is None
    assert check_percentage(100) is None
    assert check_percentage(0.0001) is None
    assert "neither 0.0" in (check_percentage(0.00001) or "")
    assert "not in [0, 100]" in (check_percentage(101) or "")
    assert per_million(25.5) == 255_000


@given(st.integers(min_value=1, max_value=10**7))
def test_millisecond_round_trip(ms):
    text = format_duration(ms / 1000)
    assert parse_duration(text) == pytest.approx(ms / 1000)


@given(st.text(max_size=30))
def test_parse_duration_only_raises_value_error(text):
    with contextlib.suppress(ValueError):
        parse_duration(text)
