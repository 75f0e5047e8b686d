"""UpstreamFault decisions: which faults hit an upstream attempt, and what happens to it.

Pure and deterministic: no I/O, no clock, no sleeping. Time comes in as float seconds and every
random draw from a seeded :class:`random.Random` the caller injects, one stream per fault.

The unit of every probability here is **one upstream attempt** (retries included), and counted
selection (``firstN``, ``nth``, ``sequence``) counts the attempts a fault targets, inside its
window, since it was applied. The proxy calls :func:`plan_attempt` before each attempt::

    states = FaultStates()
    states.apply(mesh_faults, now=clock.monotonic())          # on every config apply
    plan = plan_attempt(mesh_faults, states, host_fqdn=..., subset=..., endpoint=host,
                        request=info, now=clock.monotonic(),
                        rng_for=lambda ref: seeds.stream("upstreamfault/" + ref))

What each action (``delay``, ``abort`` …) is and does lives in its own module of
:mod:`chaoskit.faults.actions`, listed once in :data:`ACTIONS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Load order. The actions read YAML with chaoskit.config, and chaoskit.config's UpstreamFault
# parser reads the actions table (chaoskit.faults.actions): chaoskit.config is loaded first, so
# that it loads the actions in its own time whichever module a program imports first. The rest
# of this package is loaded on first use (below), because it needs chaoskit.routing, which
# needs a complete chaoskit.config. tests/chaoskit/faults/test_init.py imports each order.
import chaoskit.config  # noqa: F401

if TYPE_CHECKING:
    from chaoskit.faults.actions import ACTIONS
    from chaoskit.faults.actions.abort import AbortResponse
    from chaoskit.faults.actions.corrupt_body import corrupt
    from chaoskit.faults.actions.delay import sample_delay
    from chaoskit.faults.actions.truncate_body import truncate
    from chaoskit.faults.plan import AttemptPlan, plan_attempt
    from chaoskit.faults.selection import (
        ALL,
        FaultState,
        FaultStates,
        actions_for,
        in_window,
        select,
    )
    from chaoskit.faults.targeting import targets

#: Where each public name lives.
_HOMES = {
    "ACTIONS": "chaoskit.faults.actions",
    "ALL": "chaoskit.faults.selection",
    "AbortResponse": "chaoskit.faults.actions.abort",
    "AttemptPlan": "chaoskit.faults.plan",
    "FaultState": "chaoskit.faults.selection",
    "FaultStates": "chaoskit.faults.selection",
    "actions_for": "chaoskit.faults.selection",
    "corrupt": "chaoskit.faults.actions.corrupt_body",
    "in_window": "chaoskit.faults.selection",
    "plan_attempt": "chaoskit.faults.plan",
    "sample_delay": "chaoskit.faults.actions.delay",
    "select": "chaoskit.faults.selection",
    "targets": "chaoskit.faults.targeting",
    "truncate": "chaoskit.faults.actions.truncate_body",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


__all__ = [
    "ACTIONS",
    "ALL",
    "AbortResponse",
    "AttemptPlan",
    "FaultState",
    "FaultStates",
    "actions_for",
    "corrupt",
    "in_window",
    "plan_attempt",
    "sample_delay",
    "select",
    "targets",
    "truncate",
]
