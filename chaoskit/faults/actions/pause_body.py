"""``pauseBody``: the upstream's body stops for a while part way through, then goes on.

The body flows up to ``afterBytes`` bytes or ``afterEvents`` events (``0``: before its first
byte — a slow first byte after fast headers), then nothing moves for ``for``; without ``for`` it
never goes on, and only the route timeout (``UT``, the client's stream reset) or the client
ends it — Toxiproxy's ``timeout`` toxic. The response headers have already reached the client,
so retries and the per-try timeout are over (Envoy's rule): this is how a stream that stalls
mid-way looks. Pauses of several selected faults all apply, each at its own point.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chaoskit.config.durations import format_duration
from chaoskit.config.fields import Fields
from chaoskit.faults.actions.base import Action, Examples, Stage, no_own_percentage
from chaoskit.faults.body_point import BodyPoint, parse_point

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft


@dataclasses.dataclass(frozen=True, slots=True)
class FaultPauseBody:
    """At ``at``, the body stops for ``seconds`` (``None``: until a timeout or the client
    ends it)."""

    at: BodyPoint
    seconds: float | None = None

    def __str__(self) -> str:
        held = f"for {format_duration(self.seconds)}" if self.seconds is not None else "for good"
        return f"paused {held} after {self.at}"


def parse(spec: Fields) -> FaultPauseBody | None:
    if (f := spec.obj("pauseBody")) is None:
        return None
    no_own_percentage(f)
    at = parse_point(f, minimum=0)
    seconds = f.duration("for")
    f.done()
    if at is None:
        if not f.has("afterBytes") and not f.has("afterEvents"):
            f.error(None, "pauseBody needs afterBytes or afterEvents (0: before the first byte)")
        return None
    if seconds is None and f.has("for"):
        return None
    return FaultPauseBody(at, seconds)


def fold(plan: PlanDraft, pause: FaultPauseBody, rng: random.Random) -> None:
    plan.pauses.append(pause)


def from_keyword(value: Any) -> dict[str, Any]:
    """A mapping as is (``{"afterEvents": 2, "for": "1s"}``)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(
        "pause_body takes a mapping like {'afterBytes': 100, 'for': '2s'} "
        f"(or afterEvents), not {value!r}"
    )


def _example(n: int, max_delay_ms: int) -> dict[str, Any]:
    return {"afterBytes": n, "for": f"{max(1, max_delay_ms)}ms"}


ACTION: Action[FaultPauseBody] = Action(
    name="pauseBody",
    attr="pause_body",
    stage=Stage.BODY,
    parse=parse,
    fold=fold,
    doc=(
        "`{afterBytes: N ≥ 0 | afterEvents: N ≥ 0, for: D}`: the body stops after N bytes or "
        "events for D (without `for`: until a timeout or the client ends it), then goes on."
    ),
    from_keyword=from_keyword,
    examples=lambda bounds: Examples((1024, 100, 0), lambda n: _example(n, bounds.max_delay_ms)),
    mildness=45,
)
