"""What the proxy does to one upstream attempt: every targeted UpstreamFault folded into a plan.

The proxy calls :func:`plan_attempt` once per attempt, after the load balancer chose the
endpoint and before connecting, and then carries the :class:`AttemptPlan` out:

1. wait :attr:`AttemptPlan.delay` seconds (the per-try and route timeouts are running);
2. at most one terminal effect, *as if the endpoint misbehaved* (so retries see it):
   ``abort`` → answer :attr:`AttemptPlan.abort` as an upstream response; ``reset`` ``connect``
   → a connect failure (Envoy flag ``UF``, retried on ``connect-failure``), ``headers`` → the
   real response headers, then the connection drops, ``body`` → dropped after
   ``reset.after_bytes`` body bytes; ``hang`` → never answer (only timeouts end it);
3. otherwise (or with a ``body`` reset) forward to the real upstream and transform its response:
   :meth:`AttemptPlan.transform_body` (truncate, then corrupt), sent at
   :attr:`AttemptPlan.slow_body_bps` bytes per second when set; a ``body`` reset counts its
   bytes on the transformed body (a shorter truncation ends the body cleanly first).

Faults combine in config order: delays add up, the first terminal effect wins (later ones are
not applied and not named), body transforms combine (the lowest rate and the shortest truncation
win, corrupted byte counts add up). Body transforms are dropped when the terminal effect leaves
no upstream body to transform (abort, hang, connect or headers reset).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence

from chaoskit.config.http_route import GRPC_STATUS
from chaoskit.config.upstream_fault import FaultAbort, FaultReset, UpstreamFault
from chaoskit.faults.body import corrupt, truncate
from chaoskit.faults.delays import sample_delay
from chaoskit.faults.selection import FaultStates, actions_for, select
from chaoskit.faults.targeting import targets
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.routing.request import RequestInfo

_BODY_ACTIONS = ("slowBody", "truncateBody", "corruptBody")


@dataclasses.dataclass(frozen=True, slots=True)
class AbortResponse:
    """The response an ``abort`` sends as if from the upstream (header names lower-case)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def of(cls, abort: FaultAbort) -> AbortResponse:
        """``httpStatus`` as is; ``grpcStatus`` as HTTP 200 with ``grpc-status`` (a gRPC
        trailers-only error, which is what a gRPC server answers; ``body`` is not sent)."""
        user = {k.lower(): v for k, v in abort.headers.items()}
        body = (abort.body or "").encode()
        if abort.grpc_status is not None:
            headers = {"content-type": "application/grpc", **user}
            headers["grpc-status"] = str(GRPC_STATUS[abort.grpc_status])
            return cls(200, tuple(headers.items()), b"")
        return cls(abort.http_status or 500, tuple(user.items()), body)


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptPlan:
    """The faults of one upstream attempt; :data:`NO_FAULT` when none applies."""

    #: Seconds to wait before anything else (sum of the selected delays).
    delay: float = 0.0
    abort: AbortResponse | None = None
    reset: FaultReset | None = None
    hang: bool = False
    slow_body_bps: int | None = None
    truncate_after: int | None = None
    corrupt_bytes: int = 0
    #: Seed of the stream :meth:`transform_body` draws corrupted positions from.
    corrupt_seed: int = 0
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

    def transform_body(self, body: bytes) -> bytes:
        """The upstream body as the client gets it: truncated, then corrupted (pure)."""
        if self.truncate_after is not None:
            body = truncate(body, self.truncate_after)
        if self.corrupt_bytes:
            body = corrupt(body, self.corrupt_bytes, random.Random(self.corrupt_seed))
        return body


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
    draft = _Draft()
    for fault in faults:
        if not targets(
            fault, host_fqdn=host_fqdn, subset=subset, endpoint=endpoint, request=request
        ):
            continue
        rng = rng_for(fault.ref)
        step = select(fault, states.state_for(fault, now), now, rng)
        for action in actions_for(fault, step) if step is not None else ():
            if draft.add(fault, action, rng):
                draft.named.append(f"{fault.ref}:{action}")
    return draft.build()


@dataclasses.dataclass(slots=True)
class _Draft:
    """The plan being folded, one applied action at a time."""

    delay: float = 0.0
    abort: AbortResponse | None = None
    reset: FaultReset | None = None
    hang: bool = False
    slow: int | None = None
    cut: int | None = None
    corrupt: int = 0
    seed: int = 0
    named: list[str] = dataclasses.field(default_factory=list)

    def add(self, fault: UpstreamFault, action: str, rng: random.Random) -> bool:
        """Fold ``action`` of ``fault`` in; ``False`` when it does not apply."""
        if action == "delay" and fault.delay is not None:
            self.delay += sample_delay(fault.delay, rng)
        elif self.abort or self.reset or self.hang:
            return action in _BODY_ACTIONS and self._add_body(fault, action, rng)
        elif action == "abort" and fault.abort is not None:
            self.abort = AbortResponse.of(fault.abort)
        elif action == "reset" and fault.reset is not None:
            self.reset = fault.reset
        elif action == "hang" and fault.hang:
            self.hang = True
        else:
            return self._add_body(fault, action, rng)
        return True

    def _add_body(self, fault: UpstreamFault, action: str, rng: random.Random) -> bool:
        if action == "slowBody" and fault.slow_body is not None:
            rate = fault.slow_body.bytes_per_second
            self.slow = rate if self.slow is None else min(self.slow, rate)
        elif action == "truncateBody" and fault.truncate_body is not None:
            size = fault.truncate_body.after_bytes
            self.cut = size if self.cut is None else min(self.cut, size)
        elif action == "corruptBody" and fault.corrupt_body is not None:
            self.corrupt += fault.corrupt_body.bytes
            self.seed ^= rng.getrandbits(64)
        else:
            return False
        return True

    def build(self) -> AttemptPlan:
        if not self.named:
            return NO_FAULT
        named = tuple(self.named)
        if self.abort or self.hang or (self.reset is not None and self.reset.after != "body"):
            # No upstream body will be sent: body transforms have nothing to act on.
            self.slow, self.cut, self.corrupt, self.seed = None, None, 0, 0
            named = tuple(n for n in named if n.rpartition(":")[2] not in _BODY_ACTIONS)
        return AttemptPlan(
            delay=self.delay,
            abort=self.abort,
            reset=self.reset,
            hang=self.hang,
            slow_body_bps=self.slow,
            truncate_after=self.cut,
            corrupt_bytes=self.corrupt,
            corrupt_seed=self.seed,
            faults=named,
        )
