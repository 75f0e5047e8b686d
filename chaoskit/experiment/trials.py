"""The plans ``chaoskit explore`` runs on the system, counted and bounded honestly.

Why a module of its own: Hypothesis calls its test function far more often than
``max_examples`` says. ``max_examples`` bounds only the *generate* phase (and stops it at the
first breaking plan); the *shrink* phase then calls the test once per shrink step (up to
hundreds), and :func:`hypothesis.find` replays the minimal example once more at the end. Each
call here is a burst of traffic against real processes, so "59 plans tried for
``--max-examples 15``" was 15 or fewer generated plans plus the shrink steps and the replay.

:class:`Trials` is the test function Hypothesis calls. It runs a plan on the system only when
the plan is new, and counts the two kinds of runs apart: *generated* plans (before the first
break; Hypothesis stops generating at ``max_examples``) and *shrink steps* (after it; bounded
by ``max_shrinks``). A plan seen before is answered from memory, neither run nor counted:
Hypothesis reaches one plan from many choice sequences, and its final replay is such a repeat.
Past a limit (or the time budget) a new plan is answered "holds" without being run, so
Hypothesis stops making progress and finishes; :attr:`Trials.stopped` says which limit cut the
search short, so the output never claims more than was tried.

After Hypothesis, :func:`drop_harmless` removes every fault whose removal still breaks the
hypothesis (one at a time, through the same :class:`Trials`), so the reported plan holds no
fault that does not matter — Hypothesis shrinks the choices that *generate* a plan, and a
list element whose deletion shifts the draws after it can survive its shrinker.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from chaoskit.experiment.journal import Check

Plan = list[dict[str, Any]]
#: Runs a plan on the system: did the hypothesis break, and the checks that say so.
Judge = Callable[[Plan], tuple[bool, list[Check]]]

#: Why a search stopped before Hypothesis was done (``Trials.stopped``).
TIME_BUDGET = "time budget"
SHRINK_LIMIT = "shrink limit"


def plan_key(plan: Plan) -> str:
    """Equal plans, equal keys (dict order does not matter)."""
    return json.dumps(plan, sort_keys=True, default=str)


@dataclasses.dataclass
class Trials:
    """The judge Hypothesis calls: ``trials(plan)`` is ``True`` when the plan breaks it."""

    judge: Judge
    max_examples: int
    max_shrinks: int
    #: seconds left, read before every new run (``time.monotonic`` based in the CLI)
    time_left: Callable[[], float]
    #: called once per plan actually run: ``"example 3"`` or ``"shrink step 2"``, the plan,
    #: and whether it broke
    on_run: Callable[[str, Plan, bool], None] = lambda step, plan, broken: None
    generated: int = 0
    shrinks: int = 0
    #: answers given from memory (repeats), never run
    repeats: int = 0
    stopped: str = ""
    results: dict[str, tuple[bool, list[Check]]] = dataclasses.field(default_factory=dict)
    #: the first breaking plan; from then on, every run is a shrink step
    first_break: Plan | None = None

    @property
    def runs(self) -> int:
        """Plans run on the system: generated plus shrink steps, at most
        ``max_examples + max_shrinks``."""
        return self.generated + self.shrinks

    def __call__(self, plan: Plan) -> bool:
        key = plan_key(plan)
        if key in self.results:
            self.repeats += 1
            return self.results[key][0]
        shrinking = self.first_break is not None
        if self.time_left() <= 0:
            self.stopped = self.stopped or TIME_BUDGET
            return False
        if shrinking and self.shrinks >= self.max_shrinks:
            self.stopped = self.stopped or SHRINK_LIMIT
            return False
        if not shrinking and self.generated >= self.max_examples:
            return False  # Hypothesis stops at max_examples itself; never run more regardless
        if shrinking:
            self.shrinks += 1
            step = f"shrink step {self.shrinks}"
        else:
            self.generated += 1
            step = f"example {self.generated}"
        broken, checks = self.judge(plan)
        self.results[key] = (broken, checks)
        if broken and self.first_break is None:
            self.first_break = plan
        self.on_run(step, plan, broken)
        return broken

    def checks(self, plan: Plan) -> list[Check]:
        """The checks of a plan already run (the evidence of the one reported)."""
        return self.results[plan_key(plan)][1]


def drop_harmless(plan: Plan, trials: Trials) -> Plan:
    """``plan`` without every fault that it still breaks without, tried one at a time from the
    first; each removal tried is a shrink step of ``trials`` (so it is bounded and counted)."""
    index = 0
    while len(plan) > 1 and index < len(plan):
        candidate = plan[:index] + plan[index + 1 :]
        if trials(candidate):
            plan = candidate
        else:
            index += 1
    return plan
