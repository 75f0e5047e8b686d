"""``slowBody``: the upstream's body is sent at ``bytesPerSecond``.

Bodies are buffered, so the client gets the whole body after ``size / bytesPerSecond`` seconds.
With several selected faults the lowest rate wins.
"""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any

from chaoskit.config.fields import Fields
from chaoskit.faults.actions.base import Action, Examples, Stage

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft


@dataclasses.dataclass(frozen=True, slots=True)
class FaultSlowBody:
    bytes_per_second: int


def parse(spec: Fields) -> FaultSlowBody | None:
    if (f := spec.obj("slowBody")) is None:
        return None
    rate = f.int("bytesPerSecond", required=True, minimum=1)
    f.done()
    return FaultSlowBody(rate) if rate is not None else None


def fold(plan: PlanDraft, slow: FaultSlowBody, rng: random.Random) -> None:
    rate = slow.bytes_per_second
    plan.slow_body_bps = rate if plan.slow_body_bps is None else min(plan.slow_body_bps, rate)


def from_keyword(value: Any) -> dict[str, Any]:
    return {"bytesPerSecond": value}


ACTION: Action[FaultSlowBody] = Action(
    name="slowBody",
    attr="slow_body",
    stage=Stage.BODY,
    parse=parse,
    fold=fold,
    doc="`{bytesPerSecond: N ≥ 1}`.",
    from_keyword=from_keyword,
    examples=lambda bounds: Examples((100_000, 10_000, 1_000), lambda r: {"bytesPerSecond": r}),
    mildness=40,
)
