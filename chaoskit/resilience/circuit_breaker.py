"""Envoy's circuit breakers for one cluster (Envoy ``arch_overview/upstream/circuit_breaking.rst``;
Istio's ``applyConnectionPool`` in ``pilot/pkg/networking/core/cluster_traffic_policy.go``).

Envoy keeps these limits per cluster, summed over all its endpoints, in each client proxy, so
one :class:`CircuitBreaker` lives on each cluster. It is a pure state machine: the async caller
owns the waiting (a future per queued ticket), this class only decides and counts, so the
queueing rules can be tested step by step with no event loop.

HTTP/1.1 is modelled as Envoy's pool runs it: every active request holds one upstream
connection. A request that finds a free connection is granted, unless ``http2MaxRequests``
requests are already active (Envoy checks that limit when it attaches a request to a
connection). A request that finds every connection busy waits in the pending queue if there is
room (``http1MaxPendingRequests``), else it overflows. A finished request hands its connection
straight to the oldest waiter, so a later arrival cannot jump the queue. Both overflows become
``503 UO`` with ``x-envoy-overloaded: true`` and are never retried; both count in
``upstream_rq_pending_overflow``, as in Envoy. Idle keep-alive connections are not modelled:
``cx_active`` is the number of busy connections.

Invariant (:meth:`CircuitBreaker.check_invariants`): active and pending counts are derived from
the sets of live tickets, so they cannot drift or go negative; releasing or cancelling a ticket
twice, or one never issued, is a no-op. Beyond that, ``rq_active == cx_active`` and stays within
both limits, ``rq_pending`` within its limit, a ticket waits only while every connection is busy,
and ``0 <= rq_retry_active <= maxRetries`` (a retry budget's limit moves with the traffic:
retries already running are never cut when it shrinks, as in Envoy).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Literal, TypeAlias

from chaoskit.config.destination_rule import ConnectionPoolSettings, RetryBudget

OverflowReason: TypeAlias = Literal["pending", "max_requests"]


@dataclasses.dataclass(frozen=True, slots=True)
class Granted:
    """Send now on a connection of its own; :meth:`CircuitBreaker.release` ``ticket`` when done."""

    ticket: int


@dataclasses.dataclass(frozen=True, slots=True)
class Queued:
    """Wait until a ``release`` returns ``ticket`` (it then holds a connection) or ``cancel``."""

    ticket: int


@dataclasses.dataclass(frozen=True, slots=True)
class Overflow:
    """Answer ``503 UO`` with ``x-envoy-overloaded: true``; the request holds nothing."""

    reason: OverflowReason


Admission: TypeAlias = Granted | Queued | Overflow


class RequestWindow:
    """Requests started in the last ``interval`` seconds, for a retry budget with
    ``budgetInterval``: Envoy's ``RetryBudgetImpl`` (after tower's ``TpsBudget``) keeps ten
    slots of ``interval / 10`` and a running count for the current one; a slot is committed
    and the expired ones zeroed lazily, whenever the window is written or read. Reproduced
    step for step, so a budget runs out at the same request as in Envoy."""

    SLOTS = 10

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.slot_seconds = interval / self.SLOTS
        self.clock = clock
        self.slots = [0] * self.SLOTS
        self.current = 0
        self.generation_time = clock()
        self.index = 0

    def add(self) -> None:
        self._expire()
        self.current += 1

    def total(self) -> int:
        self._expire()
        return self.current + sum(self.slots)

    def _expire(self) -> None:
        now = self.clock()
        elapsed = now - self.generation_time
        if elapsed < self.slot_seconds:
            return
        self.generation_time = now
        index = self.index
        self.slots[index], self.current = self.current, 0
        index = (index + 1) % self.SLOTS
        cleared = 0
        while elapsed > self.slot_seconds and cleared < self.SLOTS:
            self.slots[index] = 0
            elapsed -= self.slot_seconds
            index = (index + 1) % self.SLOTS
            cleared += 1
        self.index = index


class CircuitBreaker:
    """Connection-pool limits of one cluster; a limit that is unset or 0 means unlimited."""

    def __init__(
        self,
        limits: ConnectionPoolSettings | None = None,
        retry_budget: RetryBudget | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        pool = limits or ConnectionPoolSettings()
        tcp, http = pool.effective_tcp, pool.effective_http
        self.max_connections = tcp.effective_max_connections
        self.max_pending_requests = http.effective_http1_max_pending_requests
        self.max_requests = http.effective_http2_max_requests
        self.max_retries = http.effective_max_retries
        #: ``trafficPolicy.retryBudget``: when set, it replaces ``maxRetries`` (Envoy's
        #: ``retry_budget`` "will override any configured retry circuit breaker").
        self.retry_budget = retry_budget
        interval = retry_budget.budget_interval if retry_budget is not None else None
        #: With ``budgetInterval``, the budget is a share of the requests started within it
        #: (first tries and retries alike); without, of the requests in flight.
        self.window = RequestWindow(interval, clock) if interval else None
        self._active: set[int] = set()
        self._pending: dict[int, None] = {}  # insertion order is the FIFO order
        self._last_ticket = 0
        self.active_retries = 0
        #: Envoy stats: both overflow kinds count here, as Envoy counts them.
        self.upstream_rq_pending_overflow = 0
        self.upstream_rq_retry_overflow = 0
        #: A request needed a connection beyond ``maxConnections`` (it queued instead).
        self.upstream_cx_overflow = 0
        self.upstream_rq_pending_total = 0
        self.upstream_rq_cancelled = 0

    @property
    def active_requests(self) -> int:
        return len(self._active)

    @property
    def active_connections(self) -> int:
        """One busy connection per active request (HTTP/1.1)."""
        return len(self._active)

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    def admit(self) -> Admission:
        """Decide for one new attempt (first try or retry) to this cluster."""
        if self.active_connections < self.max_connections:
            if self.active_requests >= self.max_requests:
                self.upstream_rq_pending_overflow += 1
                return Overflow("max_requests")
            ticket = self._new_ticket()
            self._activate(ticket)
            return Granted(ticket)
        if self.pending_requests >= self.max_pending_requests:
            self.upstream_rq_pending_overflow += 1
            return Overflow("pending")
        self.upstream_cx_overflow += 1
        self.upstream_rq_pending_total += 1
        ticket = self._new_ticket()
        self._pending[ticket] = None
        return Queued(ticket)

    def release(self, ticket: int) -> int | None:
        """The request holding ``ticket`` is done; returns the queued ticket to wake, if any.

        The woken ticket already holds the freed connection (it counts as active), so the caller
        only resolves its future. A ticket still queued is cancelled instead.
        """
        if ticket in self._pending:
            return self.cancel(ticket)
        if ticket not in self._active:
            return None
        self._active.remove(ticket)
        return self._wake()

    def cancel(self, ticket: int) -> int | None:
        """Give up on ``ticket`` (client went away, route timeout fired while queued).

        A queued ticket just frees its pending slot. If a ``release`` already woke it (the race
        between a wake-up and a timeout), it holds a connection, which is released as by
        :meth:`release`: the returned ticket, if any, must be woken.
        """
        if ticket in self._pending:
            del self._pending[ticket]
            self.upstream_rq_cancelled += 1
            return None
        return self.release(ticket)

    def retry_limit(self) -> int:
        """How many retries may be active at once right now.

        ``maxRetries``, or under a retry budget Envoy's ``RetryBudgetImpl::max()``:
        ``percent`` % of the active plus pending requests, rounded down, but never below
        ``minRetryConcurrency`` — so the allowance grows and shrinks with the traffic."""
        budget = self.retry_budget
        if budget is None:
            return self.max_retries
        if self.window is not None:
            base = self.window.total()
        else:
            base = self.active_requests + self.pending_requests
        allowed = int(budget.effective_percent / 100.0 * base)
        return max(allowed, budget.effective_min_retry_concurrency)

    def try_retry(self) -> bool:
        """Envoy's ``retries().canCreate()`` then ``inc()``: take a retry slot (``maxRetries``
        or the retry budget) when a retry is decided, before its back-off; ``False`` means the
        retry is skipped at once (flag ``UO``, counted in ``upstream_rq_retry_overflow``). The
        slot is held through the back-off and the retry, until :meth:`retry_done`."""
        if self.active_retries >= self.retry_limit():
            self.upstream_rq_retry_overflow += 1
            return False
        self.active_retries += 1
        return True

    def retry_done(self) -> None:
        """Give back a slot taken by :meth:`try_retry` (never below zero)."""
        self.active_retries = max(0, self.active_retries - 1)

    def snapshot(self) -> dict[str, int]:
        """Live gauges for ``/clusters`` and stats, with Envoy's names."""
        return {
            "rq_active": self.active_requests,
            "rq_pending": self.pending_requests,
            "cx_active": self.active_connections,
            "rq_retry_active": self.active_retries,
        }

    def limits(self) -> dict[str, int]:
        """The thresholds, named as ``/clusters`` prints them."""
        return {
            "max_connections": self.max_connections,
            "max_pending_requests": self.max_pending_requests,
            "max_requests": self.max_requests,
            "max_retries": self.retry_limit(),
        }

    def stats(self) -> dict[str, int]:
        """Cumulative counters, named like Envoy's ``cluster.<name>.*`` stats."""
        return {
            "upstream_cx_overflow": self.upstream_cx_overflow,
            "upstream_rq_cancelled": self.upstream_rq_cancelled,
            "upstream_rq_pending_overflow": self.upstream_rq_pending_overflow,
            "upstream_rq_pending_total": self.upstream_rq_pending_total,
            "upstream_rq_retry_overflow": self.upstream_rq_retry_overflow,
        }

    def check_invariants(self) -> None:
        """Raise ``AssertionError`` listing every broken invariant (see the module docstring)."""
        problems = []
        if self._active & self._pending.keys():
            problems.append("a ticket is both active and pending")
        if self.active_requests != self.active_connections:
            problems.append("rq_active != cx_active")
        if self.active_connections > self.max_connections:
            problems.append("cx_active above maxConnections")
        if self.active_requests > self.max_requests:
            problems.append("rq_active above http2MaxRequests")
        if self.pending_requests > self.max_pending_requests:
            problems.append("rq_pending above http1MaxPendingRequests")
        if self._pending and self.active_connections < self.max_connections:
            problems.append("a request waits while a connection is free")
        if self.active_retries < 0:
            problems.append("rq_retry_active below 0")
        if self.retry_budget is None and self.active_retries > self.max_retries:
            problems.append("rq_retry_active above maxRetries")
        if problems:
            raise AssertionError(f"circuit breaker {self.snapshot()}: " + "; ".join(problems))

    def _new_ticket(self) -> int:
        self._last_ticket += 1
        return self._last_ticket

    def _wake(self) -> int | None:
        if not self._pending or self.active_connections >= self.max_connections:
            return None
        if self.active_requests >= self.max_requests:
            return None
        ticket = next(iter(self._pending))
        del self._pending[ticket]
        self._activate(ticket)
        return ticket

    def _activate(self, ticket: int) -> None:
        """A request takes a connection: Envoy's ``requests_.inc()``, which a retry budget
        with an interval counts."""
        self._active.add(ticket)
        if self.window is not None:
            self.window.add()
