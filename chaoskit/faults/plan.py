"""What the proxy does to one upstream attempt: every targeted UpstreamFault folded into a plan.

The proxy calls :func:`plan_attempt` once per attempt, after the load balancer chose the
endpoint and before connecting, and then carries the :class:`AttemptPlan` out:

1. wait :attr:`AttemptPlan.delay` seconds (the per-try and route timeouts are running);
2. at most one terminal effect, *as if the endpoint misbehaved* (so retries see it):
   ``abort`` → answer :attr:`AttemptPlan.abort` as an upstream response; ``reset`` ``connect``
   → a connect failure (Envoy flag ``UF``, retried on ``connect-failure``), ``headers`` → the
   real response headers, then the connection drops, ``body`` → dropped after
   ``afterBytes``/``afterEvents`` of body; ``hang`` → never answer (only timeouts end it);
3. otherwise (or with a ``body`` reset) forward to the real upstream and shape its body as it
   streams (:class:`~chaoskit.faults.body_shaper.BodyShaper`): truncated at the first
   :attr:`AttemptPlan.truncate` point reached, corrupted, paused at each of
   :attr:`AttemptPlan.pauses`, paced at :attr:`AttemptPlan.slow_body_bps` bytes per second; a
   ``body`` reset counts on the shaped body (a cut reached first ends the body cleanly).

Each action's module (:mod:`chaoskit.faults.actions`) says how it changes the plan, and its
stage how it combines. Faults combine in config order: delays add up, the first terminal effect
wins (later ones are not applied and not named), body actions combine (the lowest rate and the
shortest cut of each unit win, pauses all apply, corrupted byte counts add up). Body actions
are dropped when the terminal effect leaves no upstream body to act on (abort, hang, connect or
headers reset).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.faults.actions import BY_NAME, Action, Stage
from chaoskit.faults.actions.abort import AbortResponse
from chaoskit.faults.actions.pause_body import FaultPauseBody
from chaoskit.faults.actions.reset import FaultReset
from chaoskit.faults.actions.websocket import is_websocket_upgrade
from chaoskit.faults.body_point import BodyPoint
from chaoskit.faults.selection import FaultStates, actions_for, select
from chaoskit.faults.targeting import targets
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.routing.request import RequestInfo

__all__ = ["NO_FAULT", "AbortResponse", "AttemptPlan", "PlanDraft", "plan_attempt"]


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptPlan:
    """The faults of one upstream attempt; :data:`NO_FAULT` when none applies."""

    #: Seconds to wait before anything else (sum of the selected delays).
    delay: float = 0.0
    abort: AbortResponse | None = None
    reset: FaultReset | None = None
    hang: bool = False
    slow_body_bps: int | None = None
    #: Where the body ends cleanly: the shortest cut of each unit (the first reached wins).
    truncate: tuple[BodyPoint, ...] = ()
    corrupt_bytes: int = 0
    #: Seed of the stream corrupted positions are drawn from.
    corrupt_seed: int = 0
    #: Where the body stops, and for how long, in config order.
    pauses: tuple[FaultPauseBody, ...] = ()
    #: What was applied, e.g. ``("UpstreamFault/default/flaky:delay", "…:abort")``.
    faults: tuple[str, ...] = ()

    @property
    def terminal(self) -> str | None:
        """``"abort"``, ``"reset"``, ``"hang"`` or ``None`` (the upstream answers)."""
        if self.abort is not None:
            return "abort"
        if self.reset is not None:
            return "reset"
        return "hang" if self.hang else None

    @property
    def injected(self) -> bool:
        return bool(self.faults)

    @property
    def acts_on_body(self) -> bool:
        """Does the plan change, pace, pause or cut the body (a job for a body shaper)?"""
        return bool(
            self.slow_body_bps
            or self.truncate
            or self.corrupt_bytes
            or self.pauses
            or (self.reset is not None and self.reset.after != "connect")
        )


NO_FAULT = AttemptPlan()


def plan_attempt(
    faults: Sequence[UpstreamFault],
    states: FaultStates,
    *,
    host_fqdn: str,
    subset: str | None,
    endpoint: UpstreamHost,
    request: RequestInfo,
    now: float,
    rng_for: Callable[[str], random.Random],
) -> AttemptPlan:
    """Fold every fault that targets this attempt and fires for it into one plan.

    ``faults`` in config order; ``states`` counts each fault's matching attempts (see
    :mod:`chaoskit.faults.selection` for the per-attempt unit and the counting rule); ``now`` is
    the proxy clock in seconds; ``rng_for(fault.ref)`` is that fault's own seeded stream (e.g.
    ``lambda ref: seeds.stream("upstreamfault/" + ref)``), so faults never shift each other's
    draws. The only side effects are on ``states`` and the streams.
    """
    draft = PlanDraft()
    for fault in faults:
        if fault.is_tcp:  # acts on TCP connections (chaoskit.faults.tcp), never counted here
            continue
        if not targets(
            fault, host_fqdn=host_fqdn, subset=subset, endpoint=endpoint, request=request
        ):
            continue
        rng = rng_for(fault.ref)
        step = select(fault, states.state_for(fault, now), now, rng)
        for name in actions_for(fault, step) if step is not None else ():
            action = BY_NAME[name]
            config = fault.config(action)
            if config is not None and draft.add(action, config, rng):
                draft.named.append((f"{fault.ref}:{name}", action.stage))
    # A WebSocket's answer after its handshake is frames, not a body chaoskit holds.
    return draft.build(upstream_body=not is_websocket_upgrade(request.headers))


@dataclasses.dataclass(slots=True)
class PlanDraft:
    """The plan being folded, one applied action at a time (each action's ``fold`` sets its
    fields; see :mod:`chaoskit.faults.actions`)."""

    delay: float = 0.0
    abort: AbortResponse | None = None
    reset: FaultReset | None = None
    hang: bool = False
    slow_body_bps: int | None = None
    truncate: list[BodyPoint] = dataclasses.field(default_factory=list)
    corrupt_bytes: int = 0
    corrupt_seed: int = 0
    pauses: list[FaultPauseBody] = dataclasses.field(default_factory=list)
    #: Whether the upstream's body will be sent (``False`` after an abort, a hang or a reset
    #: before the body), i.e. whether body transforms have anything to act on.
    upstream_body: bool = True
    #: The terminal action applied (the first one wins).
    terminal: str | None = None
    #: What was applied (``ref:action``), with the action's stage.
    named: list[tuple[str, Stage]] = dataclasses.field(default_factory=list)

    def add(self, action: Action[Any], config: object, rng: random.Random) -> bool:
        """Fold ``action`` in; ``False`` when it does not apply (a terminal after another)."""
        if action.stage is Stage.TERMINAL:
            if self.terminal is not None:
                return False
            self.terminal = action.name
        action.fold(self, config, rng)
        return True

    def build(self, *, upstream_body: bool = True) -> AttemptPlan:
        """The plan; ``upstream_body=False``: the attempt has no body to transform."""
        if not self.named:
            return NO_FAULT
        named = self.named
        if not self.upstream_body or not upstream_body:
            # No upstream body will be sent: body transforms have nothing to act on.
            self.slow_body_bps, self.truncate, self.pauses = None, [], []
            self.corrupt_bytes, self.corrupt_seed = 0, 0
            named = [(n, stage) for n, stage in named if stage is not Stage.BODY]
        return AttemptPlan(
            delay=self.delay,
            abort=self.abort,
            reset=self.reset,
            hang=self.hang,
            slow_body_bps=self.slow_body_bps,
            truncate=tuple(self.truncate),
            corrupt_bytes=self.corrupt_bytes,
            corrupt_seed=self.corrupt_seed,
            pauses=tuple(self.pauses),
            faults=tuple(n for n, _ in named),
        )
