"""Durations and percentages, parsed once at load time.

Istio (through Kubernetes CRDs) writes durations in Go's syntax: ``"250ms"``, ``"1.5s"``,
``"1m30s"``. Its validation then demands at least 1 ms and whole milliseconds, with a few
exceptions handled by the callers (``tcp.idleTimeout`` may be ``0s``, cookie ``ttl`` is
unchecked).
"""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
#: Longest duration accepted (Go's time.Duration limit is ~292 years; one year is plenty).
MAX_SECONDS = 365 * 24 * 3600.0


def parse_duration(text: object) -> float:
    """``"1m30s"`` → ``90.0`` seconds. Raises :class:`ValueError` with a readable message."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(
            f"{text!r} is not a duration; write it as a string such as '1.5s' or '250ms'"
        )
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    if s.startswith("-"):
        raise ValueError(f"duration {text!r} is negative")
    s = s.removeprefix("+")
    if not s or not _WHOLE.fullmatch(s):
        raise ValueError(f"{text!r} is not a duration (examples: '250ms', '1.5s', '1m30s')")
    seconds = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(s))
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {text!r} is longer than a year")
    return seconds


def check_istio_duration(seconds: float, *, allow_zero: bool = False) -> str | None:
    """Istio's rule for most durations: >= 1 ms and whole milliseconds. Returns the complaint."""
    if seconds == 0 and allow_zero:
        return None
    if seconds < 0.001 - 1e-12:
        return "duration must be greater than 1ms"
    millis = seconds * 1000
    if abs(millis - round(millis)) > 1e-6:
        return "only durations to ms precision are supported"
    return None


def format_duration(seconds: float | None) -> str:
    """The shortest readable form: ``0.25`` → ``"250ms"``, ``90`` → ``"1m30s"``."""
    if seconds is None:
        return "none"
    if seconds < 1 and seconds != 0:
        ms = seconds * 1000
        return f"{ms:g}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s" if seconds < 60 else f"{int(seconds // 60)}m{seconds % 60:g}s"
    return f"{int(seconds // 60)}m"


def check_percentage(value: float) -> str | None:
    """Istio's ``Percent``: 0, or within [0.0001, 100]."""
    if value < 0 or value > 100:
        return f"percentage {value:g} is not in [0, 100]"
    if 0 < value < 0.0001:
        return f"percentage {value:g} is neither 0.0, nor in range [0.0001, 100.0]"
    return None


def per_million(percent: float) -> int:
    """Envoy's representation: percentages become a fraction per million, drawn as integers."""
    return round(percent * 10_000)
