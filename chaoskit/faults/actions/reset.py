"""``reset``: the connection to the upstream drops, before, after or in the middle of its answer.

``connect`` is a refused connection (Envoy flag ``UF``, retried on ``connect-failure``);
``headers`` cuts right after the real response headers, ``afterBytes: N`` after N body bytes
and ``afterEvents: N`` after N events (SSE events, gRPC messages, lines:
:mod:`chaoskit.faults.body_events`) — flag ``UC``, too late to retry — counted on the body as
the other actions transformed it (Toxiproxy's ``reset_peer``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from chaoskit.config.fields import Fields
from chaoskit.faults.actions.base import Action, Examples, Stage
from chaoskit.faults.body_point import BodyPoint, parse_point

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft

ResetPoint = Literal["connect", "headers", "body"]


@dataclasses.dataclass(frozen=True, slots=True)
class FaultReset:
    """``connect``: refused before any response; ``headers``: cut after the response headers;
    ``body``: cut after ``after_bytes`` bytes or ``after_events`` events of body."""

    after: ResetPoint
    after_bytes: int | None = None
    after_events: int | None = None

    @property
    def point(self) -> BodyPoint | None:
        """Where in the body the cut comes (``headers``: before its first byte); ``None`` for
        ``connect``."""
        if self.after == "headers":
            return BodyPoint("bytes", 0)
        if self.after_events is not None:
            return BodyPoint("events", self.after_events)
        return BodyPoint("bytes", self.after_bytes) if self.after_bytes is not None else None


def parse_reset(f: Fields) -> FaultReset | None:
    """The ``reset`` mapping: ``after: connect|headers``, ``afterBytes: N`` or
    ``afterEvents: N``."""
    after = f.enum("after", ("connect", "headers"))
    if f.has("after") and (f.has("afterBytes") or f.has("afterEvents")):
        f.accept("afterBytes", "afterEvents")
        f.done()
        f.error(None, "only one of after, afterBytes, afterEvents may be set")
        return None
    at = parse_point(f, minimum=1, hint=" (after: headers cuts right after the headers)")
    f.done()
    if at is not None:
        count = at.count
        return FaultReset("body", *((count, None) if at.unit == "bytes" else (None, count)))
    if after is not None:
        return FaultReset(cast(ResetPoint, after))
    if not any(f.has(k) for k in ("after", "afterBytes", "afterEvents")):
        f.error(None, "reset needs after (connect or headers), afterBytes or afterEvents")
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
        "the response headers), `{afterBytes: N}` or `{afterEvents: N}` (N ≥ 1 body bytes or "
        "events, then cut)."
    ),
    from_keyword=from_keyword,
    examples=lambda bounds: Examples(("headers", "connect"), lambda p: {"after": p}),
    mildness=30,
    conflicts=(("abort", "an attempt either gets a response or a reset"),),
)
