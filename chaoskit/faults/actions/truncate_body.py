"""``truncateBody``: the upstream's body ends cleanly (well framed) after ``afterBytes`` bytes or
``afterEvents`` events — Toxiproxy's ``limit_data``.

The client is told the shorter length when the head announces one and the cut is in bytes;
a cut after N events of a body of announced length drops the length (the body is chunked to
an HTTP/1.1 client). With several selected faults the first cut reached wins; corruption
applies to what is left.
"""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any

from chaoskit.config.fields import Fields
from chaoskit.faults.actions.base import Action, Examples, Stage
from chaoskit.faults.body_point import BodyPoint, parse_point

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft


@dataclasses.dataclass(frozen=True, slots=True)
class FaultTruncateBody:
    """The body ends cleanly at ``at``."""

    at: BodyPoint

    @property
    def after_bytes(self) -> int | None:
        return self.at.count if self.at.unit == "bytes" else None


def parse(spec: Fields) -> FaultTruncateBody | None:
    if (f := spec.obj("truncateBody")) is None:
        return None
    at = parse_point(f, minimum=0)
    f.done()
    if at is None and not f.has("afterBytes") and not f.has("afterEvents"):
        f.error(None, "truncateBody needs afterBytes or afterEvents")
    return FaultTruncateBody(at) if at is not None else None


def truncate(body: bytes, n: int) -> bytes:
    """The first ``n`` bytes of ``body`` (all of it when shorter); the response then ends."""
    if n < 0:
        raise ValueError(f"cannot truncate to {n} bytes")
    return body[:n]


def fold(plan: PlanDraft, cut: FaultTruncateBody, rng: random.Random) -> None:
    """Keep the shortest cut of each unit (which of bytes and events comes first depends on
    the body, so both stay)."""
    at = cut.at
    if any(p.unit == at.unit and p.count <= at.count for p in plan.truncate):
        return
    plan.truncate = [*(p for p in plan.truncate if p.unit != at.unit), at]


def from_keyword(value: Any) -> dict[str, Any]:
    """A byte count → ``{afterBytes}``, a mapping as is (``{"afterEvents": 3}``)."""
    if isinstance(value, dict):
        return dict(value)
    return {"afterBytes": value}


ACTION: Action[FaultTruncateBody] = Action(
    name="truncateBody",
    attr="truncate_body",
    stage=Stage.BODY,
    parse=parse,
    fold=fold,
    doc="`{afterBytes: N ≥ 0}` or `{afterEvents: N ≥ 0}`: the body ends cleanly there.",
    from_keyword=from_keyword,
    examples=lambda bounds: Examples((1024, 100, 0), lambda n: {"afterBytes": n}),
    mildness=50,
)
