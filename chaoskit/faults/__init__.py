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
"""

from __future__ import annotations

from chaoskit.faults.body import corrupt, truncate
from chaoskit.faults.delays import sample_delay
from chaoskit.faults.plan import AbortResponse, AttemptPlan, plan_attempt
from chaoskit.faults.selection import (
    ALL,
    FaultState,
    FaultStates,
    actions_for,
    draw_percentage,
    in_window,
    select,
)
from chaoskit.faults.targeting import targets

__all__ = [
    "ALL",
    "AbortResponse",
    "AttemptPlan",
    "FaultState",
    "FaultStates",
    "actions_for",
    "corrupt",
    "draw_percentage",
    "in_window",
    "plan_attempt",
    "sample_delay",
    "select",
    "targets",
    "truncate",
]
