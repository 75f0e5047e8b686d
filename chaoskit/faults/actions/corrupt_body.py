"""``corruptBody``: ``bytes`` bytes of the upstream's body are flipped (XOR ``0xff``).

Positions come from a seed drawn from the fault's stream when the plan is made, so the plan
carries them and replays exactly. With several selected faults the byte counts add up; it
applies after ``truncateBody``. A streamed body gets the same positions as the whole body would
when its length is announced; without a length they are drawn among the bytes of the first
piece that arrives (:mod:`chaoskit.faults.body_shaper`).
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
class FaultCorruptBody:
    """``bytes`` body bytes are flipped (positions drawn from the seeded stream)."""

    bytes: int = 1


def parse(spec: Fields) -> FaultCorruptBody | None:
    if (f := spec.obj("corruptBody")) is None:
        return None
    count = f.int("bytes", minimum=1)
    f.done()
    return FaultCorruptBody(count or 1) if count is not None or not f.has("bytes") else None


def corrupt(body: bytes, n: int, rng: random.Random) -> bytes:
    """``body`` with ``n`` bytes at distinct ``rng``-chosen positions flipped (XOR ``0xff``).

    Every chosen byte changes; a body shorter than ``n`` has all its bytes flipped and an empty
    body stays empty. Positions come only from ``rng``, so a seeded stream replays exactly.
    """
    positions = flip_positions(len(body), n, rng)
    if not positions:
        return body
    out = bytearray(body)
    for position in positions:
        out[position] ^= 0xFF
    return bytes(out)


def flip_positions(length: int, n: int, rng: random.Random) -> list[int]:
    """The ``min(n, length)`` distinct positions in a body of ``length`` bytes that
    :func:`corrupt` flips, in the order drawn."""
    if n < 0:
        raise ValueError(f"cannot corrupt {n} bytes")
    count = min(n, length)
    return rng.sample(range(length), count) if count else []


def fold(plan: PlanDraft, flip: FaultCorruptBody, rng: random.Random) -> None:
    plan.corrupt_bytes += flip.bytes
    plan.corrupt_seed ^= rng.getrandbits(64)


def from_keyword(value: Any) -> dict[str, Any]:
    return {"bytes": value}


ACTION: Action[FaultCorruptBody] = Action(
    name="corruptBody",
    attr="corrupt_body",
    stage=Stage.BODY,
    parse=parse,
    fold=fold,
    doc="`{bytes: N ≥ 1}` (default 1): N body bytes flipped.",
    from_keyword=from_keyword,
    examples=lambda bounds: Examples(range(1, 9), lambda n: {"bytes": n}),
    mildness=60,
)
