"""Envoy's retry policy as Istio configures it (istio-reference §2.9).

:class:`RetryPolicy` is built once per route from ``HTTPRetry`` (or the mesh default) and
answers two questions about an attempt's :class:`Outcome`: may it be retried, and how long to
back off first. What is never retried, whatever ``retryOn`` says: a circuit-breaker overflow, a
response carrying ``x-envoy-overloaded``, the route timeout, a fault-filter abort (which never
reaches this layer at all).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Mapping

from chaoskit.config.http_route import HTTPRetry

#: Istio's retryOn when a route asks for retries without saying on what (and the mesh default).
DEFAULT_RETRY_ON = (
    "connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes",
)  # fmt: skip
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
    """How one attempt ended: a response (``status``) or a failure ``kind`` with no response.

    ``kind`` is one of ``response``, ``connect-failure``, ``reset`` (connection termination or
    protocol error), ``per-try-timeout``, ``overflow``.
    """

    kind: str
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
        if kind == "overflow":
            return False
        if kind == "per-try-timeout":
            return bool(on & _PER_TRY_TIMEOUT_RETRIED_BY)
        if kind == "connect-failure":
            return bool(
                on & {"5xx", "gateway-error", "reset", "connect-failure", "reset-before-request"}
            )
        if kind == "reset":
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
