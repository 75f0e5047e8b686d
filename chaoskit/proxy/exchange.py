"""One downstream request in flight, and the immutable record it becomes.

Every step of the request path writes what it decided into the request's :class:`Exchange`
(route, cluster, attempts, flags, faults, notes); when the answer is final,
:meth:`Exchange.to_record` turns it into one :class:`~chaoskit.records.Record`. Nothing else
writes records, so a record cannot disagree with what the path did.
"""

from __future__ import annotations

import dataclasses

from chaoskit.proxy.replies import Reply
from chaoskit.records import (
    AttemptInFlight,
    AttemptOutcome,
    AttemptRecord,
    GaveUp,
    Record,
    ResponseFlag,
    order_flags,
)
from chaoskit.resilience.retry import RetryPolicy
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.router import Listener


def without_userinfo(authority: str) -> str:
    """``user:password@host:port`` → ``host:port``: credentials never reach a record."""
    return authority.rpartition("@")[2]


def parse_hops(value: str | None) -> int:
    """``x-chaoskit-hops`` as a count; anything else (absent, garbage, negative) is 0."""
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


@dataclasses.dataclass(slots=True)
class Exchange:
    """One downstream request in flight: its inputs and everything decided about it."""

    request: RequestInfo
    headers: list[tuple[str, str]]  # as received, order and case kept
    body: bytes
    listener: Listener
    start: float  # monotonic
    start_wall: float
    request_id: str = ""
    flags: set[str] = dataclasses.field(default_factory=set)
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)
    faults: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    route_name: str = ""
    host: str = ""
    cluster: str = ""
    upstream_host: str = ""
    #: What the route allows, for explaining a client that gave up early.
    timeout: float | None = None
    retry: RetryPolicy | None = None
    attempts_started: int = 0
    #: passes through this proxy's own listeners before this one (``x-chaoskit-hops``)
    hops: int = 0
    #: The attempt running now, if any: recorded by :meth:`cut_attempt` when the request ends
    #: under it (route timeout, client gone), so the record never misses an attempt that was
    #: sent, or the UpstreamFault acting on it.
    in_flight: AttemptInFlight | None = None
    #: Set when the client went away before the answer (see :meth:`client_gave_up`).
    gave_up: GaveUp | None = None
    protocol: str = "HTTP/1.1"
    #: body bytes sent to the client after the reply's headers (a streamed body)
    streamed: int = 0

    def cut_attempt(self, outcome: AttemptOutcome, now: float) -> None:
        """Record the running attempt, if any, as ended by ``outcome`` (the route timeout, the
        client going away, a cancellation)."""
        if self.in_flight is not None:
            self.attempts.append(self.in_flight.cut(outcome, now))
            self.in_flight = None

    def client_gave_up(self, now: float) -> GaveUp:
        """The client went away now: what it waited, and what the route still allowed (the
        lesson experiments report: retries a client does not wait for are wasted)."""
        policy = self.retry
        self.gave_up = GaveUp(
            waited=now - self.start,
            source=self.request.source.name,
            target=self.host.split(".")[0] if self.host else "",
            timeout=self.timeout,
            num_retries=policy.num_retries if policy is not None else None,
            per_try_timeout=policy.per_try_timeout if policy is not None else None,
            attempts_started=self.attempts_started,
        )
        self.notes.append(self.gave_up.describe())
        return self.gave_up

    def to_record(self, reply: Reply, seq: int, now: float, *, client_gone: bool) -> Record:
        """The record of this request answered with ``reply``. An attempt still running is
        recorded as cut off (the client went away, or the path was cancelled)."""
        self.cut_attempt(
            AttemptOutcome.CLIENT_GONE if client_gone else AttemptOutcome.CANCELLED, now
        )
        flags = self.flags.union(reply.flags)
        if client_gone:
            flags.add(ResponseFlag.DC)
        req = self.request
        return Record(
            seq=seq,
            request_id=self.request_id,
            start=self.start_wall,
            duration=now - self.start,
            listener=str(self.listener),
            source=req.source.name,
            method=req.method,
            scheme=req.scheme,
            authority=without_userinfo(req.authority),
            path=req.path + (f"?{req.query}" if req.query else ""),
            status=reply.status,
            flags=order_flags(flags),
            details=reply.details or ("via_upstream" if not reply.local else ""),
            route_name=self.route_name,
            host=self.host,
            cluster=self.cluster,
            upstream_host=self.upstream_host,
            attempts=tuple(self.attempts),
            faults=tuple(self.faults),
            notes=tuple(self.notes),
            bytes_received=len(self.body),
            bytes_sent=len(reply.body) + self.streamed,
            user_agent=req.headers.get("user-agent", ""),
            gave_up=self.gave_up,
            protocol=self.protocol,
        )
