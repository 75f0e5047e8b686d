"""When an experiment's faults are on and when its traffic is sent: decisions only, no I/O.

The runner (:mod:`chaoskit.experiment.runner`) applies configuration and sleeps; the driver
(:mod:`chaoskit.experiment.traffic`) sends requests. Everything they decide about *time* is
here, as a function of the experiment alone — no clock, no randomness (the traffic's seeded
choices stay in the driver) — so the same experiment always gives the same schedule and the
schedule is tested without waiting (tests/chaoskit/experiment/test_schedule.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from chaoskit.config.experiment import FaultPhase, Traffic
from chaoskit.experiment.journal import Sample

#: Never send more than this many requests in one phase, whatever the spec says.
MAX_REQUESTS_PER_PHASE = 100_000


@dataclasses.dataclass(frozen=True, slots=True)
class Switch:
    """Fault phase ``index`` of the plan (named ``name``) goes on or off, ``at`` seconds after
    the method starts."""

    at: float
    on: bool
    name: str
    index: int


@dataclasses.dataclass(frozen=True, slots=True)
class FaultSchedule:
    """The method's fault switches in the order they are made: by time; at the same instant
    every "on" before any "off" (a phase ending exactly when another starts never leaves a
    gap), then in plan order. A phase without ``for`` has no "off": it lasts until the method
    ends (:meth:`FaultState.close_all`)."""

    switches: tuple[Switch, ...]

    @classmethod
    def of(cls, phases: Iterable[FaultPhase]) -> FaultSchedule:
        switches = []
        for index, phase in enumerate(phases):
            switches.append(Switch(phase.after, True, phase.name, index))
            if phase.duration is not None:
                switches.append(Switch(phase.after + phase.duration, False, phase.name, index))
        switches.sort(key=lambda s: (s.at, not s.on))
        return cls(tuple(switches))

    @property
    def initial(self) -> tuple[Switch, ...]:
        """The switches at ``t <= 0``: made before the method's first request."""
        n = next((i for i, s in enumerate(self.switches) if s.at > 0), len(self.switches))
        return self.switches[:n]

    @property
    def timed(self) -> tuple[Switch, ...]:
        """The rest, made while the method's traffic flows."""
        return self.switches[len(self.initial) :]

    def state_at(self, t: float) -> FaultState:
        """What is on ``t`` seconds into the method (window starts are method times here)."""
        state = FaultState()
        for s in self.switches:
            if s.at > t:
                break
            state, _ = state.switch(s, s.at)
        return state


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """A fault phase that was on from ``start`` to ``end`` (times as the caller gave them)."""

    name: str
    index: int
    start: float
    end: float


@dataclasses.dataclass(frozen=True, slots=True)
class FaultState:
    """Which fault phases are on, since when, and (by plan index) whose resources are applied.

    Phases are keyed by name, as the journal shows them. Names are not checked for uniqueness:
    a phase switched on under a name already on replaces it (its start and resources); an "off"
    for a name that is not on changes nothing.
    """

    #: name → (start, plan index of the phase switched on under that name)
    opened: Mapping[str, tuple[float, int]] = dataclasses.field(default_factory=dict)

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self.opened)

    def layers(self) -> tuple[int, ...]:
        """The plan indexes of the phases on, in the order their resources are layered over
        the mesh (by phase name, so overlapping phases layer the same way every run)."""
        return tuple(self.opened[name][1] for name in sorted(self.opened))

    def switch(self, s: Switch, now: float) -> tuple[FaultState, Window | None]:
        """The state after ``s`` made at ``now``, and the window it closed (if any)."""
        opened = dict(self.opened)
        if s.on:
            opened[s.name] = (now, s.index)
            return FaultState(opened), None
        if s.name not in opened:
            return self, None
        start, _ = opened.pop(s.name)
        return FaultState(opened), Window(s.name, s.index, start, now)

    def close_all(self, now: float) -> list[Window]:
        """The windows of the phases still on when the method ends, in the order they opened."""
        return [Window(name, index, start, now) for name, (start, index) in self.opened.items()]


def judged(samples: list[Sample], *, method: bool, has_faults: bool) -> list[Sample]:
    """The samples a phase's hypothesis is checked on: in the method of an experiment with
    faults, only the requests that started while a fault was on (``Sample.faulted``)."""
    return [s for s in samples if s.faulted] if method and has_faults else samples


@dataclasses.dataclass(frozen=True, slots=True)
class Pacing:
    """How a phase's traffic spreads over time: at most ``limit`` requests; with a ``rate``,
    request ``i`` starts no earlier than ``i / rate`` seconds into the phase (an open-loop
    schedule: a slow answer does not delay the next request); with a ``duration``, no request
    starts after it."""

    limit: int
    rate: float | None = None
    duration: float | None = None

    @classmethod
    def of(cls, traffic: Traffic) -> Pacing:
        limit = min(traffic.requests or MAX_REQUESTS_PER_PHASE, MAX_REQUESTS_PER_PHASE)
        return cls(limit, traffic.rate, traffic.duration)

    def start_of(self, begin: float, i: int) -> float | None:
        """The earliest start of request ``i`` in a phase that began at ``begin``."""
        return begin + i / self.rate if self.rate is not None else None

    def deadline(self, begin: float) -> float | None:
        """No request starts at or after this instant."""
        return begin + self.duration if self.duration is not None else None
