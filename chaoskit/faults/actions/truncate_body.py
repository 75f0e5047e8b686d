"""``truncateBody``: the upstream's body ends cleanly (well framed) after ``afterBytes`` bytes.

With several selected faults the shortest truncation wins; it applies before ``corruptBody``.
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
class FaultTruncateBody:
    """The body ends (connection closed cleanly) after ``after_bytes`` bytes."""

    after_bytes: int


def parse(spec: Fields) -> FaultTruncateBody | None:
    if (f := spec.obj("truncateBody")) is None:
        return None
    size = f.int("afterBytes", required=True, minimum=0)
    f.done()
    return FaultTruncateBody(size) if size is not None else None


def truncate(body: bytes, n: int) -> bytes:
    """The first ``n`` bytes of ``body`` (all of it when shorter); the response then ends."""
    if n < 0:
        raise ValueError(f"cannot truncate to {n} bytes")
    return body[:n]


def fold(plan: PlanDraft, cut: FaultTruncateBody, rng: random.Random) -> None:
    size = cut.after_bytes
    plan.truncate_after = size if plan.truncate_after is None else min(plan.truncate_after, size)


def from_keyword(value: Any) -> dict[str, Any]:
    return {"afterBytes": value}


ACTION: Action[FaultTruncateBody] = Action(
    name="truncateBody",
    attr="truncate_body",
    stage=Stage.BODY,
    parse=parse,
    fold=fold,
    doc="`{afterBytes: N ≥ 0}`: the body ends cleanly after N bytes.",
    from_keyword=from_keyword,
    examples=lambda bounds: Examples((1024, 100, 0), lambda n: {"afterBytes": n}),
    mildness=50,
)
