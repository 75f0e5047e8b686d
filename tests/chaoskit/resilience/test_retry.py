import random

import pytest

from chaoskit.config.http_route import DEFAULT_RETRY_ON, HTTPRetry
from chaoskit.resilience.retry import (
    Outcome,
    RetryPolicy,
    RetryState,
    RetryStatus,
)


def policy(retry_on: tuple[str, ...] | None = None, attempts: int = 2) -> RetryPolicy:
    p = RetryPolicy.from_route(HTTPRetry(attempts=attempts, retry_on=retry_on))
    assert p is not None
    return p


def test_no_policy_for_zero_attempts_or_none():
    assert RetryPolicy.from_route(None) is None
    assert RetryPolicy.from_route(HTTPRetry(attempts=0)) is None


def test_istio_default_list_when_retry_on_is_unset():
    p = policy()
    assert p.retry_on == frozenset(DEFAULT_RETRY_ON)
    assert not p.should_retry(Outcome("response", 503))  # Istio >= 1.24: 503 is not retried
    assert p.should_retry(Outcome("connect-failure"))
    assert not p.should_retry(Outcome("per-try-timeout"))
    assert p.should_retry(Outcome("response", 200, {"grpc-status": "14"}))  # unavailable


def test_numeric_tokens_become_retriable_status_codes():
    p = policy(("503", "connect-failure"))
    assert p.retriable_status_codes == frozenset({503})
    assert "retriable-status-codes" in p.retry_on
    assert p.should_retry(Outcome("response", 503))
    assert not p.should_retry(Outcome("response", 500))


@pytest.mark.parametrize(
    ("retry_on", "outcome", "expected"),
    [
        ("5xx", Outcome("response", 500), True),
        ("5xx", Outcome("reset"), True),
        ("5xx", Outcome("per-try-timeout"), True),
        ("gateway-error", Outcome("response", 500), False),
        ("gateway-error", Outcome("response", 504), True),
        ("gateway-error", Outcome("per-try-timeout"), True),
        ("reset", Outcome("reset"), True),
        ("reset", Outcome("response", 503), False),
        ("connect-failure", Outcome("reset"), False),
        ("connect-failure", Outcome("connect-failure"), True),
        ("connect-failure", Outcome("per-try-timeout"), False),
        ("retriable-4xx", Outcome("response", 409), True),
        ("retriable-4xx", Outcome("response", 404), False),
        ("5xx", Outcome("overflow"), False),
        ("5xx", Outcome("response", 503, {"x-envoy-overloaded": "true"}), False),
        ("envoy-ratelimited", Outcome("response", 429, {"x-envoy-ratelimited": "true"}), True),
        ("internal", Outcome("response", 200, {"grpc-status": "13"}), True),
        ("internal", Outcome("response", 200, {"grpc-status": "14"}), False),
    ],
)
def test_retry_on_conditions(retry_on, outcome, expected):
    assert policy((retry_on,)).should_retry(outcome) is expected


def test_backoff_is_full_jitter_capped_at_ten_times_base():
    p = policy(("5xx",))
    rng = random.Random(1)
    for n, ceiling in ((1, 0.025), (2, 0.075), (3, 0.175), (4, 0.25), (10, 0.25)):
        samples = [p.backoff(n, rng) for _ in range(500)]
        assert min(samples) >= 0 and max(samples) < ceiling
        assert max(samples) > 0.8 * ceiling  # the whole range is used


def test_backoff_is_seeded():
    p = policy(("5xx",))
    a, b = random.Random(7), random.Random(7)
    assert [p.backoff(3, a) for _ in range(10)] == [p.backoff(3, b) for _ in range(10)]


# -- RetryState: Envoy's RetryStateImpl::shouldRetry -------------------------------------------


class Slots:
    """A fake retry circuit breaker: ``free`` slots, and how often it was asked."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        if self.free <= 0:
            return False
        self.free -= 1
        return True


FAIL, OK = Outcome("response", 503), Outcome("response", 200)


def test_retry_state_counts_like_envoy_through_a_request() -> None:
    state = RetryState.start(policy(("5xx",), attempts=2))
    slots = Slots(5)
    first = state.should_retry(FAIL, slots)
    assert (first.status, first.stats, first.flag) == (
        RetryStatus.YES,
        ("upstream_rq_retry",),
        None,
    )
    second = first.state.should_retry(FAIL, slots)
    assert second.status is RetryStatus.YES and second.state.retries_remaining == 0
    last = second.state.should_retry(FAIL, slots)
    assert (last.status, last.stats, last.flag) == (
        RetryStatus.NO_RETRY_LIMIT_EXCEEDED, ("upstream_rq_retry_limit_exceeded",), "URX",
    )  # fmt: skip
    assert slots.asked == 2  # the breaker is not asked once no retries are left


def test_a_retry_whose_outcome_is_final_is_a_retry_success() -> None:
    state = RetryState.start(policy(("5xx",), attempts=2))
    retried = state.should_retry(FAIL, Slots(1))
    done = retried.state.should_retry(OK, Slots(0))
    assert (done.status, done.retry_succeeded) == (RetryStatus.NO, True)
    assert done.stats == ("upstream_rq_retry_success",)
    # a first try that succeeds is no retry success; neither is a request never retried
    assert state.should_retry(OK, Slots(1)).stats == ()
    # Envoy's definition: any final outcome of a retry, e.g. an overflow or a 404
    assert retried.state.should_retry(Outcome("overflow"), Slots(1)).retry_succeeded
    assert retried.state.should_retry(Outcome("response", 404), Slots(1)).retry_succeeded
    # ended with no upstream request at all: Envoy never asks its retry state
    assert not retried.state.should_retry(Outcome("no-healthy-upstream"), Slots(1)).stats


def test_a_full_retry_breaker_refuses_at_once_and_spends_the_retry() -> None:
    state = RetryState.start(policy(("5xx",), attempts=2))
    slots = Slots(0)
    refused = state.should_retry(FAIL, slots)
    assert (refused.status, refused.stats, refused.flag) == (
        RetryStatus.NO_OVERFLOW, ("upstream_rq_retry_overflow",), "UO",
    )  # fmt: skip
    assert slots.asked == 1 and refused.state.retries_remaining == 1  # as Envoy: decremented
    assert not refused.state.retrying  # nothing scheduled: no slot to give back


def test_a_non_retriable_outcome_never_asks_the_breaker() -> None:
    slots = Slots(0)
    decision = RetryState.start(policy(("connect-failure",))).should_retry(FAIL, slots)
    assert (decision.status, decision.stats, slots.asked) == (RetryStatus.NO, (), 0)
