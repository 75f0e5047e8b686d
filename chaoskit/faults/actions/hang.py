"""``hang``: the attempt never answers; only a per-try or route timeout ends it.

Written ``hang: true`` or ``hang: {}`` (it has no options); ``hang: false`` is no action.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from chaoskit.config.fields import Fields, type_name
from chaoskit.config.yamlsource import YMap
from chaoskit.faults.actions.base import Action, Examples, Stage

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft


def parse(spec: Fields) -> bool | None:
    """``True`` for ``hang: true`` or ``{}``; ``None`` when absent, false or wrong."""
    value: Any = spec.raw("hang")
    if value is None or isinstance(value, bool):
        return value or None
    if isinstance(value, YMap):
        f = Fields(value, spec.sub("hang"), spec.ctx)
        f.done()  # every key is unknown: hang has no options
        return not value or None
    spec.error("hang", f"must be true or {{}}, not {type_name(value)}")
    return None


def fold(plan: PlanDraft, hang: bool, rng: random.Random) -> None:
    plan.hang = True
    plan.upstream_body = False


ACTION: Action[bool] = Action(
    name="hang",
    attr="hang",
    stage=Stage.TERMINAL,
    parse=parse,
    fold=fold,
    doc="`true` or `{}`: the attempt never answers.",
    from_keyword=lambda value: True if value else None,
    examples=lambda bounds: Examples((True,), lambda v: v),
    mildness=70,
    conflicts=(
        ("abort", "a hung attempt never answers"),
        ("reset", "a hung attempt is never reset"),
    ),
)
