"""What the TCP proxy does to one connection: every TCP UpstreamFault that fires folded into a
:class:`ConnectionPlan`.

The proxy calls :func:`plan_connection` once per connection, after the load balancer chose the
endpoint and before connecting to it. Selection is the HTTP faults' (:mod:`chaoskit.faults.
selection`) with the connection as the unit: ``percentage`` draws once per connection,
``firstN``/``nth``/``sequence`` count the connections the fault targets, ``window`` limits
them in time, each fault drawing from its own seeded stream. Faults fold in configuration
order: shaping actions combine (:mod:`.shaping`), the first ending wins (:mod:`.endings`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.faults.selection import FaultStates, actions_for, select
from chaoskit.faults.targeting import targets
from chaoskit.faults.tcp.actions import TCP_BY_NAME
from chaoskit.faults.tcp.base import Stream, TcpAction
from chaoskit.faults.tcp.shaping import TcpSlicer
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.routing.request import RequestInfo


@dataclasses.dataclass(frozen=True, slots=True)
class DirectionPlan:
    """What happens to the bytes of one direction."""

    #: Seconds each chunk is held before it is written on.
    latency: float = 0.0
    bytes_per_second: int | None = None
    slicer: TcpSlicer | None = None
    #: ``limitData``: close the connection cleanly once this many bytes went through.
    limit_bytes: int | None = None
    #: ``resetPeer.afterBytes``: reset the client once this many bytes went through.
    reset_after_bytes: int | None = None

    @property
    def paced(self) -> bool:
        """Whether bytes wait on their way (latency, bandwidth or slices)."""
        return bool(self.latency or self.bytes_per_second or self.slicer)

    @property
    def cut_at(self) -> int | None:
        """Where the direction ends early (a limit or a reset), if it does."""
        cuts = [n for n in (self.limit_bytes, self.reset_after_bytes) if n is not None]
        return min(cuts) if cuts else None


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """The faults of one connection; :data:`NO_TCP_FAULT` when none fires."""

    #: Client → upstream bytes (Toxiproxy's ``upstream`` stream).
    upstream: DirectionPlan = DirectionPlan()
    #: Upstream → client bytes (Toxiproxy's ``downstream`` stream).
    downstream: DirectionPlan = DirectionPlan()
    #: ``resetPeer`` by time: reset the client this many seconds after connecting.
    reset_after: float | None = None
    #: ``timeout``: relay nothing; close ``close_after`` seconds after connecting (or hold).
    blackhole: bool = False
    close_after: float | None = None
    #: Seed of the stream slice sizes are drawn from.
    slicer_seed: int = 0
    #: What was applied, e.g. ``("UpstreamFault/default/slow-redis:latency",)``.
    faults: tuple[str, ...] = ()

    @property
    def injected(self) -> bool:
        return bool(self.faults)


NO_TCP_FAULT = ConnectionPlan()


@dataclasses.dataclass(slots=True)
class DirectionDraft:
    latency: float = 0.0
    bytes_per_second: int | None = None
    slicer: TcpSlicer | None = None
    limit_bytes: int | None = None
    reset_after_bytes: int | None = None

    def build(self) -> DirectionPlan:
        return DirectionPlan(
            self.latency, self.bytes_per_second, self.slicer, self.limit_bytes,
            self.reset_after_bytes,
        )  # fmt: skip


@dataclasses.dataclass(slots=True)
class ConnectionDraft:
    """The plan being folded, one applied action at a time (each action's ``fold`` sets its
    fields: see :mod:`.shaping`, :mod:`.endings`)."""

    upstream: DirectionDraft = dataclasses.field(default_factory=DirectionDraft)
    downstream: DirectionDraft = dataclasses.field(default_factory=DirectionDraft)
    reset_after: float | None = None
    blackhole: bool = False
    close_after: float | None = None
    slicer_seed: int = 0
    #: The ending applied (the first one wins).
    ending: str | None = None
    named: list[str] = dataclasses.field(default_factory=list)

    def directions(self, stream: Stream) -> tuple[DirectionDraft, ...]:
        if stream == "both":
            return (self.upstream, self.downstream)
        return (self.upstream,) if stream == "upstream" else (self.downstream,)

    def add(self, action: TcpAction[Any], config: object, rng: random.Random) -> bool:
        """Fold ``action`` in; ``False`` when it does not apply (an ending after another)."""
        if action.ending:
            if self.ending is not None:
                return False
            self.ending = action.name
        action.fold(self, config, rng)
        return True

    def build(self) -> ConnectionPlan:
        if not self.named:
            return NO_TCP_FAULT
        return ConnectionPlan(
            upstream=self.upstream.build(),
            downstream=self.downstream.build(),
            reset_after=self.reset_after,
            blackhole=self.blackhole,
            close_after=self.close_after,
            slicer_seed=self.slicer_seed,
            faults=tuple(self.named),
        )


def plan_connection(
    faults: Sequence[UpstreamFault],
    states: FaultStates,
    *,
    host_fqdn: str,
    subset: str | None,
    endpoint: UpstreamHost,
    request: RequestInfo,
    now: float,
    rng_for: Callable[[str], random.Random],
) -> ConnectionPlan:
    """Fold every TCP fault that targets this connection and fires for it into one plan.

    Arguments as for :func:`chaoskit.faults.plan.plan_attempt` (``request`` describes the
    connection: its caller and the service port); HTTP faults are skipped without being
    counted, so an HTTP request never uses up a TCP fault's ``firstN`` and the other way round.
    """
    draft = ConnectionDraft()
    for fault in faults:
        if not fault.is_tcp or not targets(
            fault, host_fqdn=host_fqdn, subset=subset, endpoint=endpoint, request=request
        ):
            continue
        rng = rng_for(fault.ref)
        step = select(fault, states.state_for(fault, now), now, rng)
        for name in actions_for(fault, step) if step is not None else ():
            action = TCP_BY_NAME[name]
            config = fault.config(action)
            if config is not None and draft.add(action, config, rng):
                draft.named.append(f"{fault.ref}:{name}")
    return draft.build()
