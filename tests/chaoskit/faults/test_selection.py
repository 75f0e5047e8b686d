"""Selection per matching attempt: percentage, firstN, nth, sequence, window, and the state."""

from __future__ import annotations

import math

import pytest

from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.faults.selection import (
    ALL,
    FaultState,
    FaultStates,
    actions_for,
    select,
)

from .helpers import doc, fault, faults, rng

BASE = "host: payments\nabort: {httpStatus: 503}\n"


def run(f: UpstreamFault, attempts: int, *, seed: int = 0, applied_at: float = 0.0) -> list:
    state, r = FaultState(applied_at), rng(seed)
    return [select(f, state, applied_at + i, r) for i in range(attempts)]


def test_percentage_0_is_exactly_never() -> None:
    assert set(run(fault(BASE + "percentage: {value: 0}\n"), 10_000)) == {None}


def test_percentage_100_is_exactly_always() -> None:
    assert set(run(fault(BASE + "percentage: {value: 100}\n"), 10_000)) == {ALL}
    assert set(run(fault(BASE), 1_000)) == {ALL}  # the default


def test_percentage_25_within_binomial_bounds() -> None:
    n, p = 10_000, 0.25
    hits = run(fault(BASE + "percentage: {value: 25}\n"), n, seed=11).count(ALL)
    # Binomial(10000, 0.25): mean 2500, σ = √(n·p·(1-p)) ≈ 43.3; accept mean ± 4.5σ (±195).
    assert abs(hits - n * p) <= 4.5 * math.sqrt(n * p * (1 - p))


def test_percentage_draws_once_per_matching_attempt_whatever_its_value() -> None:
    states = []
    for value in (0, 50, 100):
        r = rng(3)
        select(fault(BASE + f"percentage: {{value: {value}}}\n"), FaultState(0.0), 0.0, r)
        states.append(r.getstate())
    assert states[0] == states[1] == states[2] != rng(3).getstate()


def test_first_n() -> None:
    assert run(fault(BASE + "firstN: 2\n"), 6) == [ALL, ALL, None, None, None, None]


def test_nth() -> None:
    out = run(fault(BASE + "nth: 3\n"), 9)
    assert [i + 1 for i, step in enumerate(out) if step] == [3, 6, 9]


def test_counted_selection_draws_nothing() -> None:
    r = rng()
    before = r.getstate()
    for spec in ("firstN: 2\n", "nth: 2\n", "sequence: [abort, pass]\n"):
        f, state = fault(BASE + spec), FaultState(0.0)
        for _ in range(5):
            select(f, state, 0.0, r)
    assert r.getstate() == before


SEQ = BASE + "sequence: [abort, abort, pass]\n"


def test_sequence_then_pass() -> None:
    assert run(fault(SEQ), 6) == ["abort", "abort", None, None, None, None]


def test_sequence_repeat_cycles() -> None:
    out = run(fault(SEQ + "repeat: true\n"), 7)
    assert out == ["abort", "abort", None, "abort", "abort", None, "abort"]


def test_sequence_step_applies_only_the_action_it_names() -> None:
    f = fault(BASE + "delay: {fixedDelay: 1s}\nsequence: [delay, abort, pass]\n")
    assert run(f, 3) == ["delay", "abort", None]
    assert actions_for(f, "delay") == ("delay",)
    assert actions_for(f, ALL) == ("delay", "abort")
    assert actions_for(f, "reset") == ()  # not configured: nothing


WINDOW = BASE + "firstN: 2\nwindow: {after: 5s, for: 10s}\n"


@pytest.mark.parametrize(
    ("offset", "inside"),
    [(0.0, False), (4.999, False), (5.0, True), (14.999, True), (15.0, False), (100.0, False)],
)
def test_window_bounds(offset: float, inside: bool) -> None:
    f, state = fault(BASE + "window: {after: 5s, for: 10s}\n"), FaultState(applied_at=100.0)
    assert (select(f, state, 100.0 + offset, rng()) == ALL) is inside
    assert state.matched == int(inside)  # attempts outside the window are not counted


def test_window_without_for_lasts_forever() -> None:
    f, state = fault(BASE + "window: {after: 1s}\n"), FaultState(applied_at=0.0)
    assert select(f, state, 0.5, rng()) is None
    assert select(f, state, 1e9, rng()) == ALL


def test_first_n_counts_only_attempts_inside_the_window() -> None:
    f, state, r = fault(WINDOW), FaultState(applied_at=10.0), rng()
    before = [select(f, state, t, r) for t in (10.0, 12.0, 14.9)]
    inside = [select(f, state, t, r) for t in (15.0, 16.0, 17.0)]
    after = [select(f, state, t, r) for t in (25.0, 30.0)]
    assert (before, inside, after) == ([None] * 3, [ALL, ALL, None], [None, None])
    assert (state.matched, state.fired) == (3, 2)


def test_state_counts_matched_and_fired() -> None:
    f, state, r = fault(SEQ + "repeat: true\n"), FaultState(0.0), rng()
    for _ in range(4):
        select(f, state, 0.0, r)
    assert (state.matched, state.fired) == (4, 3)


# -- FaultStates ----------------------------------------------------------------------------

FLAKY = BASE + "firstN: 1\n"


def fire(states: FaultStates, f: UpstreamFault, now: float = 0.0) -> str | None:
    return select(f, states.state_for(f, now), now, rng())


def test_apply_restarts_counters_of_every_fault() -> None:
    (f,) = faults(doc(FLAKY))
    states = FaultStates()
    states.apply([f], now=0.0)
    assert [fire(states, f), fire(states, f)] == [ALL, None]
    states.apply([f], now=50.0)  # re-applied: firstN starts again, window from 50 s
    assert fire(states, f) == ALL
    state = states.get(f.ref)
    assert state is not None and state.applied_at == 50.0


def test_keep_unchanged_keeps_counters_and_restarts_changed_faults() -> None:
    a, b = faults(doc(FLAKY, "a"), doc(FLAKY, "b"))
    states = FaultStates()
    states.apply([a, b], now=0.0)
    fire(states, a), fire(states, b)
    # Same definitions from another file and position: the same faults; b's firstN changes.
    a2, b2 = faults("# moved\n" + doc(FLAKY, "a"), doc(BASE + "firstN: 2\n", "b"), file="x.yaml")
    assert a2.location != a.location
    states.apply([a2, b2], now=30.0, keep_unchanged=True)
    assert [fire(states, a2), fire(states, b2)] == [None, ALL]
    state_a, state_b = states.get(a.ref), states.get(b.ref)
    assert state_a is not None and state_b is not None
    assert (state_a.applied_at, state_b.applied_at) == (0.0, 30.0)


def test_apply_drops_faults_no_longer_configured() -> None:
    a, b = faults(doc(FLAKY, "a"), doc(FLAKY, "b"))
    states = FaultStates()
    states.apply([a, b], now=0.0)
    states.apply([b], now=1.0, keep_unchanged=True)
    assert (len(states), states.get(a.ref)) == (1, None)


def test_state_for_a_fault_never_applied_starts_now() -> None:
    states, f = FaultStates(), fault(FLAKY)
    assert states.state_for(f, 7.0) == FaultState(applied_at=7.0)
    assert states.state_for(f, 9.0) is states.state_for(f, 7.0)
