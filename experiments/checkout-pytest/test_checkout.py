"""Does checkout still answer quickly, and never double-charge, when payments misbehaves?"""

from __future__ import annotations

import time

import pytest
from chaoskit_pytest import ChaosConfigWarning


def pay(client, checkout: str, order: str) -> tuple[int, dict[str, object]]:
    response = client.post(f"{checkout}/checkout", json={"order": order, "amount": 12.5}, timeout=5)
    return response.status_code, response.json()


def test_checkout_pays_through_the_mesh(chaos, checkout, client):
    for i in range(5):
        assert pay(client, checkout, f"o-{i}") == (200, {"status": "paid", "attempts": 1})
    assert len(chaos.records.where(host="payments", source="checkout", status=200)) == 5
    chaos.assert_not_retried("payments")
    chaos.assert_p95("payments", below=0.25)
    chaos.assert_no_requests_bypassed()


def test_slow_payments_gets_a_graceful_error_in_time(chaos, checkout, client, payments):
    chaos.route_fault("payments", delay="1s")
    t0 = time.monotonic()
    status, body = pay(client, checkout, "o-slow")
    elapsed = time.monotonic() - t0
    assert (status, body["status"]) == (503, "payment-unavailable")
    assert elapsed < 0.9, f"checkout took {elapsed:.2f}s to give up"
    chaos.assert_fired()
    # Both of checkout's attempts were delayed and abandoned. Anything that still reached
    # payments carries the order's idempotency key, so the card is never charged twice.
    assert len(chaos.records.where(host="payments", source="checkout", flags="DI")) == 2
    assert {r.headers["idempotency-key"] for r in payments.requests} <= {"o-slow"}


def test_payments_down_reports_failure(chaos, checkout, client):
    with pytest.warns(ChaosConfigWarning, match="never retried"):
        chaos.route_fault("payments", abort=503)
    assert pay(client, checkout, "o-down") == (
        503,
        {"status": "payment-unavailable", "reason": "payments answered 503"},
    )
    chaos.assert_fired()
    # The VirtualService retries do not apply to an Istio fault abort: only checkout's own retry.
    chaos.assert_not_retried("payments")
    assert len(chaos.records.where(host="payments", flags="FI")) == 2


@pytest.mark.chaos("faults/payments-flaky.yaml", seed=7)
def test_checkout_outcome_follows_payments_answers(chaos, checkout, client):
    paid = {}
    for i in range(12):
        status, _ = pay(client, checkout, f"o-{i}")
        paid[f"o-{i}"] = status == 200
    chaos.assert_fired()
    chaos.assert_error_rate("payments", below=0.6)
    for order, ok in paid.items():
        answers = [r.status for r in chaos.records.where(path=f"/pay?order={order}")]
        assert ok == (200 in answers), (order, answers)
        assert len(answers) == (1 if answers[0] == 200 else 2)


def test_the_mesh_retries_a_failing_payments_attempt(chaos, checkout, client):
    fault = chaos.fault("payments", abort=503, first=1)
    assert pay(client, checkout, "o-retry") == (200, {"status": "paid", "attempts": 1})
    chaos.assert_fired(fault)
    chaos.assert_retried("payments", times=1)
    chaos.assert_no_requests_bypassed()


def test_an_answer_cut_off_mid_body_is_retried_with_the_same_key(chaos, checkout, client, payments):
    # payments starts its answer, then the connection breaks (the body is cut after 5 bytes):
    # checkout must not crash on the broken read; its retry carries the same idempotency key.
    chaos.fault("payments", reset=5, first=1)
    assert pay(client, checkout, "o-cut") == (200, {"status": "paid", "attempts": 2})
    assert {r.headers["idempotency-key"] for r in payments.requests} == {"o-cut"}
