import random

import pytest

from chaoskit.config.http_route import HTTPRetry
from chaoskit.resilience.retry import DEFAULT_RETRY_ON, Outcome, RetryPolicy


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
