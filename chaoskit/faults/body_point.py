"""A place in a response body where a body action acts: after N bytes, or after N events.

``afterBytes`` counts bytes of the body as the client gets it; ``afterEvents`` counts the
body's own units, so a test can say "the third event never arrives" without knowing event
sizes (:mod:`chaoskit.faults.body_events` says what an event is for each content type: an SSE
event, a gRPC message, a line of NDJSON). ``reset``, ``truncateBody`` and ``pauseBody`` share it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from chaoskit.config.fields import Fields

Unit = Literal["bytes", "events"]
#: The YAML key of each unit.
KEYS: dict[Unit, str] = {"bytes": "afterBytes", "events": "afterEvents"}


@dataclasses.dataclass(frozen=True, slots=True)
class BodyPoint:
    """After ``count`` bytes, or after ``count`` whole events (``count`` ≥ 0)."""

    unit: Unit
    count: int

    def __str__(self) -> str:
        noun = ("byte" if self.unit == "bytes" else "event") + ("" if self.count == 1 else "s")
        return f"{self.count} {noun}"

    def to_yaml(self) -> dict[str, int]:
        return {KEYS[self.unit]: self.count}


def parse_point(f: Fields, *, minimum: int, hint: str = "") -> BodyPoint | None:
    """``afterBytes: N`` or ``afterEvents: N`` from ``f`` (at most one, N ≥ ``minimum``;
    ``hint`` ends the message for a smaller N); ``None`` when neither is there or it is wrong
    (reported). Does not call ``done``."""
    given = [unit for unit, key in KEYS.items() if f.has(key)]
    if len(given) > 1:
        f.accept(*KEYS.values())
        f.error(None, "only one of afterBytes, afterEvents may be set")
        return None
    if not given:
        return None
    unit = given[0]
    count = f.int(KEYS[unit], minimum=None)
    if count is None:
        return None
    if count < minimum:
        f.error(KEYS[unit], f"{KEYS[unit]} must be at least {minimum}, not {count}{hint}")
        return None
    return BodyPoint(unit, count)
