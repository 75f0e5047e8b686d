"""Which step of an UpstreamFault fires for one matching attempt, and the state it counts with.

**Unit of probability and counting.** Selection is evaluated once per *upstream attempt* that
the fault targets (:func:`~chaoskit.faults.targeting.targets`), retries included: with
``percentage: {value: 50}`` and two retries, each of the three attempts is hit with
probability 1/2 independently. ``firstN``, ``nth`` and ``sequence`` count those matching
attempts since the fault was applied (:attr:`FaultState.applied_at`), across all requests.

**Windows.** ``window: {after, for}`` makes the fault active from ``applied_at + after``
(inclusive) to ``applied_at + after + for`` (exclusive; no ``for`` = forever). Attempts outside
the window pass untouched, are *not* counted and draw nothing from the random stream, so
``firstN: 2`` with ``window.after: 5s`` hits the first two matching attempts after 5 s.

**Percentage.** :func:`chaoskit.rng.draw_percentage`, Envoy's ``FractionalPercent`` rule: an
integer draw per million, so ``0`` is exactly never, ``100`` exactly always, values under
0.00005 round to never. The draw is made for every matching attempt in the window, so a fault's
stream advances identically whatever its value. Counted selection
(``firstN``/``nth``/``sequence``) draws nothing: it is deterministic.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable

from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.rng import draw_percentage

#: :func:`select`'s answer when every configured action applies (no ``sequence``).
ALL = "all"


@dataclasses.dataclass(slots=True)
class FaultState:
    """Runtime counters of one applied fault (mutable; lives on the proxy loop only)."""

    #: When the fault was applied (seconds on the proxy's clock); windows count from here.
    applied_at: float
    #: Matching attempts inside the window so far (what firstN/nth/sequence count).
    matched: int = 0
    #: Of those, how many a step fired for (``pass`` steps and missed draws excluded).
    fired: int = 0


def in_window(fault: UpstreamFault, state: FaultState, now: float) -> bool:
    """Whether ``now`` falls in the fault's window (always, without one)."""
    window = fault.window
    if window is None:
        return True
    elapsed = now - state.applied_at
    if elapsed < window.after:
        return False
    return window.duration is None or elapsed < window.after + window.duration


def select(fault: UpstreamFault, state: FaultState, now: float, rng: random.Random) -> str | None:
    """The step that fires for this matching attempt, counting it in ``state``.

    Call it only for attempts :func:`~chaoskit.faults.targeting.targets` accepted. Returns
    ``None`` when nothing fires (outside the window, a missed draw, past ``firstN``, not an
    ``nth``, a ``pass`` step or a finished sequence), else :data:`ALL` (every configured
    action, when the fault has no sequence) or the action a ``sequence`` step names.
    """
    if not in_window(fault, state, now):
        return None
    state.matched += 1
    n = state.matched
    mode = fault.selection
    if mode == "percentage":
        step: str | None = ALL if draw_percentage(rng, fault.percentage) else None
    elif mode == "firstN":
        step = ALL if n <= (fault.first_n or 0) else None
    elif mode == "nth":
        step = ALL if fault.nth and n % fault.nth == 0 else None
    else:
        seq = fault.sequence
        index = n - 1 if not fault.repeat else (n - 1) % len(seq)
        step = seq[index] if index < len(seq) else None
        step = None if step == "pass" else step
    if step is not None:
        state.fired += 1
    return step


def actions_for(fault: UpstreamFault, step: str) -> tuple[str, ...]:
    """The actions (YAML names, in order of application) a fired ``step`` applies."""
    configured = fault.actions
    if step == ALL:
        return configured
    return (step,) if step in configured else ()


def definition(fault: UpstreamFault) -> tuple[object, ...]:
    """What makes two faults the same fault: every field but where it was written."""
    return tuple(getattr(fault, f.name) for f in dataclasses.fields(fault) if f.name != "location")


class FaultStates:
    """One :class:`FaultState` per fault ``ref``, for the faults of the applied config.

    Counters restart when a fault is (re-)applied: :meth:`apply` restarts every fault it is
    given, so applying the same config twice (e.g. in two tests) starts ``firstN`` afresh. With
    ``keep_unchanged=True`` (a reload that did not mean to re-apply faults) a fault whose
    definition is unchanged keeps its counters and its window start; a changed one restarts.
    Faults absent from the new config are dropped.
    """

    def __init__(self) -> None:
        self._states: dict[str, tuple[tuple[object, ...], FaultState]] = {}

    def apply(
        self, faults: Iterable[UpstreamFault], now: float, *, keep_unchanged: bool = False
    ) -> None:
        """Install the state for ``faults``, applied at ``now``."""
        old = self._states
        self._states = {}
        for fault in faults:
            key = definition(fault)
            kept = old.get(fault.ref)
            if keep_unchanged and kept is not None and kept[0] == key:
                self._states[fault.ref] = kept
            else:
                self._states[fault.ref] = (key, FaultState(applied_at=now))

    def state_for(self, fault: UpstreamFault, now: float) -> FaultState:
        """The state of ``fault``; one never applied counts as applied at ``now``."""
        entry = self._states.get(fault.ref)
        if entry is None:
            entry = self._states[fault.ref] = (definition(fault), FaultState(applied_at=now))
        return entry[1]

    def get(self, ref: str) -> FaultState | None:
        """The state of the fault ``ref`` (``Kind/namespace/name``), for stats and reports."""
        entry = self._states.get(ref)
        return entry[1] if entry is not None else None

    def __len__(self) -> int:
        return len(self._states)
