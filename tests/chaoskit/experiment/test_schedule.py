"""The fault schedule and the traffic's pacing: pure decisions, checked without waiting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chaoskit.config.experiment import FaultPhase, Target, Traffic
from chaoskit.experiment.journal import Sample
from chaoskit.experiment.schedule import (
    MAX_REQUESTS_PER_PHASE,
    FaultSchedule,
    FaultState,
    Pacing,
    Switch,
    Window,
    judged,
)


def phase(name: str, after: float = 0.0, duration: float | None = None) -> FaultPhase:
    return FaultPhase(name, files=("f.yaml",), after=after, duration=duration)


def test_switches_by_time_on_before_off_then_plan_order():
    schedule = FaultSchedule.of(
        [phase("late", 1, 2), phase("early", 0, 1.5), phase("open", 3), phase("blip", 0, 0)]
    )
    assert [(s.at, s.on, s.name) for s in schedule.switches] == [
        (0, True, "early"),
        (0, True, "blip"),
        (0, False, "blip"),  # a zero-length phase still goes on first
        (1, True, "late"),
        (1.5, False, "early"),
        (3, True, "open"),  # on before "late" goes off at the same instant: no gap
        (3, False, "late"),
    ]
    assert [s.index for s in schedule.switches] == [1, 3, 3, 0, 1, 2, 0]


def test_what_happens_before_the_first_request():
    schedule = FaultSchedule.of([phase("late", 1, 2), phase("early", 0, 1.5), phase("blip", 0, 0)])
    assert [(s.name, s.on) for s in schedule.initial] == [
        ("early", True),
        ("blip", True),
        ("blip", False),
    ]
    assert [(s.at, s.name, s.on) for s in schedule.timed] == [
        (1, "late", True),
        (1.5, "early", False),
        (3, "late", False),
    ]
    assert FaultSchedule.of([phase("later", 2)]).initial == ()
    assert FaultSchedule.of([]).switches == ()


def test_what_is_on_when():
    schedule = FaultSchedule.of([phase("late", 1, 2), phase("early", 0, 1.5), phase("open", 3)])
    on = {t: sorted(schedule.state_at(t).active) for t in (0, 0.99, 1, 1.49, 1.5, 2.9, 3, 1e6)}
    assert on == {
        0: ["early"],
        0.99: ["early"],
        1: ["early", "late"],
        1.49: ["early", "late"],
        1.5: ["late"],
        2.9: ["late"],
        3: ["open"],  # "late" is over at 3, "open" has started
        1e6: ["open"],  # no ``for``: until the method ends
    }
    assert schedule.state_at(2).opened == {"late": (1, 0)}


def test_windows_and_layers():
    state = FaultState()
    state, closed = state.switch(Switch(0, True, "b", 0), now=10.0)
    assert closed is None
    state, closed = state.switch(Switch(1, True, "a", 1), now=11.0)
    assert closed is None and state.active == {"a", "b"}
    assert state.layers() == (1, 0)  # layered by name: "a" (plan index 1), then "b"
    state, closed = state.switch(Switch(2, False, "b", 0), now=12.5)
    assert closed == Window("b", 0, 10.0, 12.5)
    assert state.layers() == (1,)
    state, _ = state.switch(Switch(3, True, "c", 2), now=13.0)
    assert state.close_all(20.0) == [Window("a", 1, 11.0, 20.0), Window("c", 2, 13.0, 20.0)]
    assert FaultState().close_all(1.0) == [] and FaultState().layers() == ()


def test_phases_sharing_a_name():
    # Names are not required to be unique: the later phase replaces the earlier while on, and
    # an "off" for a name that is not on changes nothing (no crash in the scheduler thread).
    state, _ = FaultState().switch(Switch(0, True, "x", 0), now=1.0)
    state, _ = state.switch(Switch(1, True, "x", 1), now=2.0)
    assert state.opened == {"x": (2.0, 1)}
    state, closed = state.switch(Switch(2, False, "x", 1), now=3.0)
    assert closed == Window("x", 1, 2.0, 3.0)
    same, closed = state.switch(Switch(5, False, "x", 0), now=4.0)
    assert same is state and closed is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"),
            st.sampled_from([0.0, 0.5, 1.0, 2.0]),
            st.none() | st.sampled_from([0.0, 0.5, 1.0]),
        ),
        max_size=6,
    ),
    st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0]),
)
def test_a_phase_with_its_own_name_is_on_exactly_in_its_interval(spec, t):
    names = [f"{name}{i}" for i, (name, _, _) in enumerate(spec)]  # unique
    phases = [phase(n, after, d) for n, (_, after, d) in zip(names, spec, strict=True)]
    state = FaultSchedule.of(phases).state_at(t)
    for p in phases:
        end = p.after + p.duration if p.duration is not None else float("inf")
        # [after, after + for): a zero-length phase is off again at once
        assert (p.name in state.active) == (p.after <= t < end), (p, t)


def sample(faulted: bool) -> Sample:
    return Sample(0.0, "method", "web", 200, 0.01, faulted=faulted)


def test_the_method_is_judged_on_the_requests_sent_under_a_fault():
    samples = [sample(True), sample(False), sample(True)]
    assert judged(samples, method=True, has_faults=True) == [samples[0], samples[2]]
    assert judged(samples, method=True, has_faults=False) == samples
    assert judged(samples, method=False, has_faults=True) == samples


def traffic(**kw: object) -> Traffic:
    return Traffic((Target("http://web/", "t"),), **kw)  # type: ignore[arg-type]


def test_pacing():
    assert Pacing.of(traffic(requests=10)) == Pacing(10)
    assert Pacing.of(traffic(duration=5.0, rate=4.0)) == Pacing(MAX_REQUESTS_PER_PHASE, 4.0, 5.0)
    assert Pacing.of(traffic(requests=10**9)).limit == MAX_REQUESTS_PER_PHASE
    open_loop = Pacing(5, rate=4.0, duration=1.0)
    assert [open_loop.start_of(100.0, i) for i in range(5)] == [100, 100.25, 100.5, 100.75, 101]
    assert open_loop.deadline(100.0) == 101.0
    closed_loop = Pacing(5)
    assert closed_loop.start_of(100.0, 3) is None and closed_loop.deadline(100.0) is None
