"""Envoy's retry policy as Istio configures it (Envoy ``source/common/router/retry_state_impl.cc``
and ``router_filter.rst``; istio/istio ``pilot/pkg/networking/core/route/retry/retry.go``).

:class:`RetryPolicy` is built once per route from ``HTTPRetry`` (or the mesh default) and
answers two questions about an attempt's :class:`Outcome`: may it be retried, and how long to
back off first. What is never retried, whatever ``retryOn`` says: a circuit-breaker overflow, a
response carrying ``x-envoy-overloaded``, the route timeout, a fault-filter abort (which never
reaches this layer at all).

:class:`RetryState` is one request's retry bookkeeping, Envoy's ``RetryStateImpl``: after each
attempt, :meth:`RetryState.should_retry` answers with a :class:`RetryStatus` *before* anything
is scheduled, so a retry refused by ``num_retries`` (``URX``) or by the ``maxRetries`` circuit
breaker / retry budget (``UO``) is answered at once, with no back-off, and only a retry that
really goes ahead counts as ``upstream_rq_retry``.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import random
from collections.abc import Callable, Mapping

from chaoskit.config.http_route import DEFAULT_RETRY_ON, HTTPRetry
from chaoskit.records import AttemptOutcome

#: Envoy's back-off: 25 ms base, 10 × base cap, full jitter.
DEFAULT_BASE_INTERVAL = 0.025
_GRPC_CODES = {
    "cancelled": "1", "deadline-exceeded": "4", "resource-exhausted": "8", "internal": "13",
    "unavailable": "14",
}  # fmt: skip
#: Conditions under which a per-try timeout is retried (Envoy's router).
_PER_TRY_TIMEOUT_RETRIED_BY = frozenset({"5xx", "gateway-error", "reset"})


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as the retry state judges it: ``kind`` (the one vocabulary of
    attempt outcomes, :class:`~chaoskit.records.AttemptOutcome`), the upstream's ``status``
    and, only when a retry policy will read them, its headers (lower-case names)."""

    kind: AttemptOutcome
    status: int | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    num_retries: int
    retry_on: frozenset[str]
    retriable_status_codes: frozenset[int] = frozenset()
    per_try_timeout: float | None = None
    base_interval: float = DEFAULT_BASE_INTERVAL
    retry_ignore_previous_hosts: bool = True

    @property
    def max_interval(self) -> float:
        return 10 * self.base_interval

    @classmethod
    @functools.lru_cache(maxsize=1024)  # one policy per route, built once, not per request
    def from_route(cls, retry: HTTPRetry | None) -> RetryPolicy | None:
        """Istio's translation (retry.go): ``attempts: 0`` or no policy ⇒ ``None``; numeric
        ``retryOn`` tokens become retriable status codes."""
        if retry is None or retry.attempts <= 0:
            return None
        tokens = retry.retry_on if retry.retry_on is not None else DEFAULT_RETRY_ON
        codes = frozenset(int(t) for t in tokens if t.isdigit())
        conditions = {t for t in tokens if not t.isdigit()}
        if codes:
            conditions.add("retriable-status-codes")
        return cls(
            num_retries=retry.attempts,
            retry_on=frozenset(conditions),
            retriable_status_codes=codes,
            per_try_timeout=retry.per_try_timeout,
            base_interval=retry.backoff or DEFAULT_BASE_INTERVAL,
            retry_ignore_previous_hosts=retry.retry_ignore_previous_hosts,
        )

    def should_retry(self, outcome: Outcome) -> bool:
        """Would Envoy retry this outcome (ignoring how many retries are left)?"""
        on = self.retry_on
        kind = outcome.kind
        if kind == AttemptOutcome.OVERFLOW:
            return False
        if kind == AttemptOutcome.PER_TRY_TIMEOUT:
            return bool(on & _PER_TRY_TIMEOUT_RETRIED_BY)
        if kind == AttemptOutcome.CONNECT_FAILURE:
            return bool(
                on & {"5xx", "gateway-error", "reset", "connect-failure", "reset-before-request"}
            )
        if kind == AttemptOutcome.RESET:
            return bool(on & {"5xx", "gateway-error", "reset"})
        headers = outcome.headers
        if headers.get("x-envoy-overloaded") is not None:
            return False
        status = outcome.status or 0
        if "5xx" in on and status >= 500:
            return True
        if "gateway-error" in on and status in (502, 503, 504):
            return True
        if "retriable-4xx" in on and status == 409:
            return True
        if "retriable-status-codes" in on and status in self.retriable_status_codes:
            return True
        if "envoy-ratelimited" in on and headers.get("x-envoy-ratelimited") is not None:
            return True
        grpc = headers.get("grpc-status")
        return grpc is not None and any(_GRPC_CODES.get(c) == grpc for c in on)

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: retry N waits uniformly in [0, (2^N − 1) × base), capped at 10 × base."""
        ceiling = min(((1 << retry_number) - 1) * self.base_interval, self.max_interval)
        return rng.random() * ceiling

    def describe(self) -> str:
        on = ",".join(sorted(self.retry_on))
        codes = ",".join(map(str, sorted(self.retriable_status_codes)))
        per_try = f", perTryTimeout {self.per_try_timeout:g}s" if self.per_try_timeout else ""
        return f"{self.num_retries} retries on {on}{' ' + codes if codes else ''}{per_try}"


class RetryStatus(enum.Enum):
    """Envoy's ``RetryStatus``: what :meth:`RetryState.should_retry` decided for an attempt."""

    #: The outcome is final: ``retryOn`` does not cover it.
    NO = "no"
    #: Retriable, but the request has used all ``attempts`` (flag ``URX``).
    NO_RETRY_LIMIT_EXCEEDED = "no-retry-limit-exceeded"
    #: Retriable, but the cluster's ``maxRetries`` / retry budget is full (flag ``UO``).
    NO_OVERFLOW = "no-overflow"
    #: A retry is scheduled: back off, then send it.
    YES = "yes"


#: The counter each refusal or go-ahead moves, named as Envoy's cluster stats.
RETRY_STATS = {
    RetryStatus.YES: "upstream_rq_retry",
    RetryStatus.NO_OVERFLOW: "upstream_rq_retry_overflow",
    RetryStatus.NO_RETRY_LIMIT_EXCEEDED: "upstream_rq_retry_limit_exceeded",
}
#: Envoy's ``upstream_rq_retry_success``: a scheduled retry whose outcome was final.
RETRY_SUCCESS_STAT = "upstream_rq_retry_success"
#: The response flag a refused retry adds to the request.
RETRY_FLAGS = {RetryStatus.NO_OVERFLOW: "UO", RetryStatus.NO_RETRY_LIMIT_EXCEEDED: "URX"}
#: Outcomes that end a request with no upstream request at all (no healthy endpoint, a loop):
#: Envoy answers these locally without asking its retry state, so they are never retried and
#: never count as a retry success.
_LOCAL_ENDS = frozenset({AttemptOutcome.NO_HEALTHY_UPSTREAM, AttemptOutcome.LOOP})


@dataclasses.dataclass(frozen=True, slots=True)
class RetryDecision:
    """A :class:`RetryStatus`, the state to judge the next attempt with, and the counters."""

    status: RetryStatus
    state: RetryState
    #: The attempt judged was a retry and its outcome is final (Envoy's "retry success": any
    #: outcome ``retryOn`` does not retry, so usually, but not only, a good answer).
    retry_succeeded: bool = False

    @property
    def stats(self) -> tuple[str, ...]:
        """Cluster counters to increment for this decision, Envoy's names."""
        out = (RETRY_SUCCESS_STAT,) if self.retry_succeeded else ()
        stat = RETRY_STATS.get(self.status)
        return (*out, stat) if stat is not None else out

    @property
    def flag(self) -> str | None:
        return RETRY_FLAGS.get(self.status)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryState:
    """One request's retries so far (Envoy's ``RetryStateImpl``), immutable: each decision
    returns the next state."""

    policy: RetryPolicy
    retries_remaining: int
    #: A retry was scheduled, so the next outcome judged is that retry's.
    retrying: bool = False

    @classmethod
    def start(cls, policy: RetryPolicy) -> RetryState:
        return cls(policy, policy.num_retries)

    def should_retry(self, outcome: Outcome, take_retry_slot: Callable[[], bool]) -> RetryDecision:
        """Envoy's ``RetryStateImpl::shouldRetry``, in its order: not retriable → ``NO``; no
        retries left → ``NO_RETRY_LIMIT_EXCEEDED``; then (one retry spent either way) the
        cluster's retry circuit breaker — ``take_retry_slot`` is asked only now, and must take
        a slot when it answers ``True`` — full → ``NO_OVERFLOW``; else ``YES``."""
        idle = dataclasses.replace(self, retrying=False)
        if outcome.kind in _LOCAL_ENDS:
            return RetryDecision(RetryStatus.NO, idle)
        if not self.policy.should_retry(outcome):
            return RetryDecision(RetryStatus.NO, idle, retry_succeeded=self.retrying)
        if self.retries_remaining <= 0:
            return RetryDecision(RetryStatus.NO_RETRY_LIMIT_EXCEEDED, idle)
        spent = dataclasses.replace(idle, retries_remaining=self.retries_remaining - 1)
        if not take_retry_slot():
            return RetryDecision(RetryStatus.NO_OVERFLOW, spent)
        return RetryDecision(RetryStatus.YES, dataclasses.replace(spent, retrying=True))
