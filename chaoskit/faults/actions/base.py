"""What an UpstreamFault action is: one :class:`Action` value per module, listed in one table.

An action (``delay``, ``abort``, ``slowBody`` …) is described once, in its own module, by an
:class:`Action`: its YAML name, how its mapping is read (with the same issues, file, line and
field path as any other field), how it folds into the plan of one attempt, its row of the docs
table, the ``chaos.fault(...)`` keyword that writes it and the values a generated plan may use.
:data:`chaoskit.faults.actions.ACTIONS` lists them in the order they apply; the YAML parser, the
attempt plan, the Hypothesis strategies, the pytest helper and the docs all iterate it, as
Toxiproxy's API and CLI iterate its registry of toxics (``toxics/toxic.go``, ``toxics.Register``).
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from chaoskit.config.fields import Fields

if TYPE_CHECKING:
    from chaoskit.faults.plan import PlanDraft

C = TypeVar("C")


class Stage(enum.Enum):
    """Where in an attempt an action acts, which decides how actions of several faults combine."""

    #: Before the attempt goes on; every selected one applies and their times add up.
    DELAY = "delay"
    #: Instead of (part of) the upstream's answer; the first selected one wins, later ones are
    #: not applied and not named.
    TERMINAL = "terminal"
    #: Transforms the upstream's body; dropped when the terminal action leaves no body to send.
    BODY = "body"
    #: Acts on the WebSocket a handshake attempt opens, after the handshake (``webSocket``).
    SOCKET = "socket"


@dataclasses.dataclass(frozen=True, slots=True)
class ExampleBounds:
    """What the caller of the Hypothesis strategies bounds (``chaoskit.strategies``)."""

    statuses: tuple[int, ...]
    max_delay_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Examples:
    """The values a generated plan may give an action, mildest first, and the YAML of each.

    A ``range`` is drawn as an integer in it (shrinking towards its start), a tuple as one of
    its items (shrinking towards the first); shrinking so moves towards milder faults.
    """

    values: range | tuple[Any, ...]
    to_yaml: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Action(Generic[C]):
    """One UpstreamFault action; ``C`` is its frozen config type."""

    #: The YAML field under ``spec`` and the name a ``sequence`` step and a record use.
    name: str
    #: The :class:`~chaoskit.config.upstream_fault.UpstreamFault` attribute holding the config
    #: (also the ``chaos.fault(...)`` keyword).
    attr: str
    stage: Stage
    #: Reads the action from the fault's ``spec``: its config, or ``None`` when it is absent or
    #: wrong (every problem reported on ``spec``'s issues, with the field path).
    parse: Callable[[Fields], C | None]
    #: Folds a selected action into the attempt's plan, drawing from the fault's own stream.
    fold: Callable[[PlanDraft, C, random.Random], None]
    #: The "Rules and meaning" cell of the action's row in docs/configuration.md.
    doc: str
    #: The ``chaos.fault(<attr>=value)`` keyword's value as the YAML value (``None``: not set);
    #: raises :class:`TypeError` for a value it cannot write.
    from_keyword: Callable[[Any], Any]
    #: What a generated plan may use (see :class:`Examples`).
    examples: Callable[[ExampleBounds], Examples]
    #: Rank among actions from mildest (lowest) to harshest: generated plans shrink towards it.
    mildness: int
    #: Why this action cannot hit the same attempt as another (by name); pairs not listed get
    #: the general rule, "only delay combines with others".
    conflicts: tuple[tuple[str, str], ...] = ()


def no_own_percentage(f: Fields) -> None:
    """Refuse a ``percentage`` inside an action: selection is set once for the whole fault.

    Istio's ``HTTPFaultInjection.delay``/``.abort`` each carry a ``percentage``; an UpstreamFault
    selects attempts once, for all its actions, so the Istio habit gets a pointed error.
    """
    for key in ("percentage", "percent"):
        if f.has(key):
            f.accept(key)
            f.error(
                key,
                "selection is set once for the whole fault: use spec.percentage, "
                "firstN, nth or sequence",
            )
