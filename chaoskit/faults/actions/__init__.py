"""The UpstreamFault actions: one module each, one table (:data:`ACTIONS`) that everything reads.

Each module (``delay``, ``abort``, ``reset``, ``hang``, ``slow_body``, ``pause_body``,
``truncate_body``, ``corrupt_body``, ``websocket``) holds the action's frozen config type, the
parser of its YAML mapping and how it folds into the plan of one upstream attempt, in one
:class:`~.base.Action` value. What reads this table instead of keeping its own list:

- the YAML parser (:mod:`chaoskit.config.upstream_fault`): which fields are actions, their
  order, the "needs at least one action" and ``sequence`` step messages, the combination rules;
- the attempt plan (:mod:`chaoskit.faults.plan`): how a selected action changes the attempt;
- the Hypothesis strategies (:mod:`chaoskit.strategies`): ``KINDS`` and the generated values;
- the pytest helper (``chaos.fault(...)``, ``chaoskit_pytest.resources.build_upstream_fault``);
- the docs: :func:`docs_table` is the "Actions" table of docs/configuration.md (a test keeps
  them equal).

To add an action: write its module (copy the closest one), add its ``ACTION`` below, add its
config field to :class:`~chaoskit.config.upstream_fault.UpstreamFault` and its keyword to
``chaos.fault(...)`` in pytest_plugin/handle.py, paste :func:`docs_table` into
docs/configuration.md; when it changes the attempt in a new way, add the field to
:class:`~chaoskit.faults.plan.AttemptPlan` and carry it out in the proxy's pipeline. Tests fail
until each of these is done.
"""

from __future__ import annotations

from typing import Any

from chaoskit.faults.actions import (
    abort,
    corrupt_body,
    delay,
    hang,
    pause_body,
    reset,
    slow_body,
    truncate_body,
    websocket,
)
from chaoskit.faults.actions.base import Action, ExampleBounds, Examples, Stage

#: Every action, in the order they apply to an attempt ("delay first") and are listed in docs
#: and messages.
ACTIONS: tuple[Action[Any], ...] = (
    delay.ACTION,
    abort.ACTION,
    reset.ACTION,
    hang.ACTION,
    slow_body.ACTION,
    pause_body.ACTION,
    truncate_body.ACTION,
    corrupt_body.ACTION,
    websocket.ACTION,
)
#: The YAML names, in :data:`ACTIONS` order.
ACTION_NAMES = tuple(a.name for a in ACTIONS)
#: Each action by its YAML name.
BY_NAME: dict[str, Action[Any]] = {a.name: a for a in ACTIONS}


def docs_table() -> str:
    """The "Actions" table of docs/configuration.md (Markdown, one row per action)."""
    rows = [f"| `{a.name}` | {a.doc} |" for a in ACTIONS]
    return "\n".join(["| Field | Rules and meaning |", "|---|---|", *rows]) + "\n"


__all__ = [
    "ACTIONS",
    "ACTION_NAMES",
    "BY_NAME",
    "Action",
    "ExampleBounds",
    "Examples",
    "Stage",
    "docs_table",
]
