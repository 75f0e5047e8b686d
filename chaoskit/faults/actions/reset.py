"""``reset``: the connection to the upstream drops, before, after or in the middle of its answer.

``connect`` is a refused connection (Envoy flag ``UF``, retried on ``connect-failure``);
``headers`` cuts right after the real response headers and ``afterBytes: N`` after N body bytes
(flag ``UC``; too late to retry), counted on the body as the other actions transformed it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from chaoskit.config.fields import Fields
from chaoskit.faults.actions.base import Action, Examples, Stage

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft

ResetPoint = Literal["connect", "headers", "body"]


@dataclasses.dataclass(frozen=True, slots=True)
class FaultReset:
    """``connect``: refused before any response; ``headers``: cut after the response headers;
    ``body``: cut after ``after_bytes`` bytes of body."""

    after: ResetPoint
    after_bytes: int | None = None


def parse_reset(f: Fields) -> FaultReset | None:
    """The ``reset`` mapping: ``after: connect|headers`` or ``afterBytes: N``."""
    after = f.enum("after", ("connect", "headers"))
    after_bytes = f.int("afterBytes", minimum=None)
    f.done()
    if f.has("after") and f.has("afterBytes"):
        f.error(None, "only one of after, afterBytes may be set")
        return None
    if after_bytes is not None and after_bytes < 1:
        f.error(
            "afterBytes",
            f"afterBytes must be at least 1, not {after_bytes} "
            "(after: headers cuts right after the headers)",
        )
        return None
    if after_bytes is not None:
        return FaultReset("body", after_bytes)
    if after is not None:
        return FaultReset(cast(ResetPoint, after))
    if not f.has("after"):
        f.error(None, "reset needs after (connect or headers) or afterBytes")
    return None


def parse(spec: Fields) -> FaultReset | None:
    return parse_reset(r) if (r := spec.obj("reset")) is not None else None


def fold(plan: PlanDraft, reset: FaultReset, rng: random.Random) -> None:
    plan.reset = reset
    plan.upstream_body = reset.after == "body"


def from_keyword(value: Any) -> dict[str, Any]:
    """``"connect"``/``"headers"`` → ``{after}``, a byte count → ``{afterBytes}``, a dict as is."""
    if isinstance(value, bool):
        raise TypeError(
            f"reset must be 'connect', 'headers', a byte count or a dict, not {value!r}"
        )
    if isinstance(value, int):
        return {"afterBytes": value}
    if isinstance(value, str):
        return {"after": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"reset must be 'connect', 'headers', a byte count or a dict, not {value!r}")


ACTION: Action[FaultReset] = Action(
    name="reset",
    attr="reset",
    stage=Stage.TERMINAL,
    parse=parse,
    fold=fold,
    doc=(
        "`{after: connect}` (refused before any response), `{after: headers}` (cut right after "
        "the response headers) or `{afterBytes: N}` (N ≥ 1 body bytes, then cut)."
    ),
    from_keyword=from_keyword,
    examples=lambda bounds: Examples(("headers", "connect"), lambda p: {"after": p}),
    mildness=30,
    conflicts=(("abort", "an attempt either gets a response or a reset"),),
)
