"""Counting and bounding the plans explore runs, with a fake judge (no system, no sleeps)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings

from chaoskit.experiment.journal import Check
from chaoskit.experiment.trials import SHRINK_LIMIT, TIME_BUDGET, Trials, drop_harmless, plan_key
from chaoskit.strategies import fault_plans

Plan = list[dict[str, Any]]


class Judge:
    """Breaks when some fault aborts ``web``; records every plan it was asked to run."""

    def __init__(self) -> None:
        self.ran: list[Plan] = []

    def __call__(self, plan: Plan) -> tuple[bool, list[Check]]:
        self.ran.append(plan)
        broken = any(f["spec"]["host"] == "web" and "abort" in f["spec"] for f in plan)
        return broken, [Check("explore", "success rate", "success_rate", "1", "0", not broken)]


def fault(name: str, **spec: Any) -> dict[str, Any]:
    return {"kind": "UpstreamFault", "metadata": {"name": name}, "spec": {"host": "web", **spec}}


DELAY = fault("plan-1", delay={"fixedDelay": "1ms"}, firstN=1)
ABORT = fault("plan-2", abort={"httpStatus": 503}, firstN=2)
DB_ABORT = {**ABORT, "spec": {**ABORT["spec"], "host": "db"}}


def search(judge: Judge, max_examples: int, max_shrinks: int, seed: int) -> tuple[Plan, Trials]:
    """What explore does, on the fake judge: Hypothesis's find, then drop_harmless."""
    trials = Trials(judge, max_examples, max_shrinks, lambda: 1.0)
    found = find(
        fault_plans(["web", "db"], kinds=("delay", "abort"), min_faults=1, max_faults=3),
        trials,
        settings=settings(max_examples=max_examples, database=None, deadline=None,
                          phases=[Phase.generate, Phase.shrink],
                          suppress_health_check=list(HealthCheck)),
        random=random.Random(seed),
    )  # fmt: skip
    return drop_harmless(found, trials), trials


def test_a_plan_is_run_once_and_repeats_are_answered_from_memory():
    judge = Judge()
    trials = Trials(judge, max_examples=5, max_shrinks=5, time_left=lambda: 1.0)
    assert trials([ABORT]) and trials([ABORT]) and not trials([DB_ABORT])
    assert judge.ran == [[ABORT], [DB_ABORT]]
    assert (trials.generated, trials.shrinks, trials.repeats) == (
        1,
        1,
        1,
    )  # after a break: shrinking
    assert trials.checks([ABORT])[0].ok is False
    assert plan_key([{"a": 1, "b": 2}]) == plan_key([{"b": 2, "a": 1}])


def test_shrinking_stops_at_its_limit_and_says_so():
    judge = Judge()
    trials = Trials(judge, max_examples=5, max_shrinks=1, time_left=lambda: 1.0)
    assert trials([ABORT, DELAY])  # the first break
    assert not trials([DELAY])  # shrink step 1: run, holds
    assert not trials([ABORT])  # past the limit: not run, answered "holds"
    assert len(judge.ran) == 2 and trials.stopped == SHRINK_LIMIT and trials.runs == 2


def test_out_of_time_nothing_new_is_run():
    judge = Judge()
    trials = Trials(judge, max_examples=5, max_shrinks=5, time_left=lambda: 0.0)
    assert not trials([ABORT]) and judge.ran == [] and trials.stopped == TIME_BUDGET


def test_drop_harmless_removes_a_fault_that_does_not_matter_and_keeps_the_names():
    judge = Judge()
    trials = Trials(judge, max_examples=5, max_shrinks=5, time_left=lambda: 1.0)
    assert trials([DELAY, ABORT])
    assert drop_harmless([DELAY, ABORT], trials) == [ABORT]  # named plan-2, as it ran
    assert trials.shrinks == 1


def test_max_examples_bounds_the_search_and_shrinks_are_counted_apart():
    """Hypothesis's max_examples bounds only the generate phase: every further call is a
    shrink step (or a repeat, never run). Before, each call counted as a "tried plan"."""
    for seed in range(5):
        judge = Judge()
        plan, trials = search(judge, max_examples=15, max_shrinks=40, seed=seed)
        assert trials.generated <= 15 and trials.shrinks <= 40
        assert len(judge.ran) == trials.runs == len({plan_key(p) for p in judge.ran})
        assert trials.repeats >= 1  # find's final replay of the smallest plan is never re-run
        (only,) = plan  # no harmless fault left
        assert only["spec"] == {"host": "web", "abort": {"httpStatus": 503}, "firstN": 1}
