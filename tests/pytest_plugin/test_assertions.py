"""The assertion helpers: when they pass, and the exact text a failure shows."""

from __future__ import annotations

import concurrent.futures
import re

import pytest
import requests
from chaoskit_pytest.assertions import percentile

from .conftest import virtual_service

RETRY_ROUTE = "[{route: [{destination: {host: payments}}], retries: {attempts: 2, retryOn: 5xx}}]"


def failure(check, *args, **kwargs) -> list[str]:
    """The lines of the AssertionError ``check`` raises, with timings and ports made stable."""
    with pytest.raises(AssertionError) as e:
        check(*args, **kwargs)
    text = re.sub(r"in \d+(\.\d+)? ms", "in N ms", str(e.value))
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    return text.splitlines()


def test_percentile_is_nearest_rank():
    assert percentile([1.0], 95) == 1.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


# -- retries ------------------------------------------------------------------------------------


def test_assert_retried_counts_retries_per_request(mesh, payments):
    mesh.apply(virtual_service("payments", RETRY_ROUTE))
    payments.fail_first = 1
    assert mesh.session().get("http://payments/").status_code == 200
    mesh.assert_retried("payments", times=1)
    mesh.assert_retried("payments")
    assert failure(mesh.assert_retried, "payments", times=2) == [
        "expected 2 retries of payments, saw 1:",
        "    1 request to payments.default.svc.cluster.local:",
        "      GET / → 200 in N ms (2 attempts: 127.0.0.1:PORT response 503; "
        "127.0.0.1:PORT response 200)",
        "assert 2 in [1]",
    ]
    assert failure(mesh.assert_not_retried, "payments") == [
        "expected no retries of payments, saw 1 request retried (of 1):",
        "    1 request to payments.default.svc.cluster.local:",
        "      GET / → 200 in N ms (2 attempts: 127.0.0.1:PORT response 503; "
        "127.0.0.1:PORT response 200)",
        "assert 1 == 0",
    ]


def test_assert_retried_explains_a_request_that_was_never_retried(mesh):
    mesh.route_fault("payments", abort=503)
    mesh.session().post("http://payments/pay")
    assert failure(mesh.assert_retried, "payments", times=1) == [
        "expected 1 retry of payments, saw 0:",
        "    1 request to payments.default.svc.cluster.local:",
        "      POST /pay → 503 [FI] in N ms (no upstream attempt; route fault abort)",
        "    hint: no request was retried: does the route set retries (attempts, retryOn)? "
        "A VirtualService fault abort is never retried; use chaos.fault() instead.",
        "assert 1 in [0]",
    ]
    mesh.assert_not_retried("payments")


def test_helpers_say_when_the_proxy_saw_nothing(mesh, payments):
    requests.get(f"http://127.0.0.1:{payments.port}/", timeout=5)  # straight past the proxy
    assert failure(mesh.assert_retried, "payments", times=1) == [
        "expected 1 retry of payments, saw no requests to payments:",
        "    the proxy saw no requests in this test: send traffic through chaos.session(), "
        "chaos.url or chaos.env (a client that does not use the proxy bypasses every fault)",
        "assert []",
    ]


def test_helpers_list_where_traffic_went_instead(mesh):
    mesh.session().get("http://ratings/r")
    assert failure(mesh.assert_not_retried, "payments") == [
        "expected requests to payments without retries, saw no requests to payments:",
        "    requests this test made went elsewhere:",
        "      1 request to ratings.default.svc.cluster.local:",
        "        GET /r → 200 in N ms (1 attempt: 127.0.0.1:PORT response 200)",
        "assert []",
    ]


def test_assert_retried_refuses_a_bad_times(mesh):
    with pytest.raises(TypeError, match="times must be a whole number"):
        mesh.assert_retried("payments", times=-1)


# -- timeouts, ejections, overflows -----------------------------------------------------------


def test_assert_timed_out(mesh):
    mesh.apply(
        virtual_service("payments", "[{route: [{destination: {host: payments}}], timeout: 100ms}]")
    )
    s = mesh.session()
    s.get("http://payments/")
    assert failure(mesh.assert_timed_out, "payments") == [
        "expected a request to payments to time out (flag UT or a per-try timeout), "
        "saw none time out:",
        "    1 request to payments.default.svc.cluster.local:",
        "      GET / → 200 in N ms (1 attempt: 127.0.0.1:PORT response 200)",
        "assert []",
    ]
    assert s.get("http://payments/delay/1000").status_code == 504
    mesh.assert_timed_out("payments")
    (record,) = mesh.records.where(flags="UT")
    assert record.notes == ("route timeout 0.1s expired",)


def test_assert_ejected_without_outlier_detection(mesh):
    mesh.session().get("http://payments/status/503")
    assert failure(mesh.assert_ejected, "payments") == [
        "expected outlier detection to eject an endpoint of payments, saw no ejection:",
        "    no outlier_detection counters for payments: is outlierDetection set in its "
        "DestinationRule?",
        "    1 request to payments.default.svc.cluster.local:",
        "      GET /status/503 → 503 in N ms (1 attempt: 127.0.0.1:PORT response 503)",
        "assert 0 > 0",
    ]


def test_assert_overflowed_without_a_circuit_breaker(mesh):
    mesh.session().get("http://payments/")
    assert failure(mesh.assert_overflowed, "payments") == [
        "expected the circuit breaker of payments to overflow (flag UO), saw none:",
        "    1 request to payments.default.svc.cluster.local:",
        "      GET / → 200 in N ms (1 attempt: 127.0.0.1:PORT response 200)",
        "assert 0 > 0",
    ]


BREAKER = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: payments}
spec:
  host: payments
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
"""


def test_assert_ejected_end_to_end(mesh):
    mesh.apply(BREAKER)
    mesh.fault("payments", abort=503, first=2)
    s = mesh.session()
    for _ in range(3):
        s.get("http://payments/")
    mesh.assert_ejected("payments")


def test_assert_overflowed_end_to_end(mesh):
    mesh.apply(BREAKER)
    mesh.fault("payments", delay="300ms")
    # three concurrent requests against 1 connection + 1 pending request: one overflows
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda _: mesh.session().get("http://payments/"), range(3)))
    mesh.assert_overflowed("payments")


# -- latency and errors ------------------------------------------------------------------------


def test_assert_p95(mesh):
    s = mesh.session()
    for _ in range(3):
        s.get("http://payments/")
    s.get("http://payments/delay/150")
    mesh.assert_p95("payments", below=1.0)
    lines = failure(mesh.assert_p95, "payments", below=0.1)
    assert re.fullmatch(
        r"expected p95 latency of payments below 100 ms, saw \d+ ms over 4 requests; slowest:",
        lines[0],
    )
    assert lines[1] == "      GET /delay/150 → 200 in N ms (1 attempt: 127.0.0.1:PORT response 200)"
    assert len(lines) == 6 and lines[-1].startswith("assert 0.1")


def test_assert_error_rate(mesh):
    s = mesh.session()
    for path in ("/", "/", "/", "/status/503"):
        s.get(f"http://payments{path}")
    mesh.assert_error_rate("payments", below=0.3)
    assert failure(mesh.assert_error_rate, "payments", below=0.1) == [
        "expected error rate of payments below 10%, saw 25% (1 of 4 requests answered 5xx):",
        "      GET /status/503 → 503 in N ms (1 attempt: 127.0.0.1:PORT response 503)",
        "assert 0.25 < 0.1",
    ]
    with pytest.raises(ValueError, match="below must be a fraction from 0 to 1"):
        mesh.assert_error_rate("payments", below=10)


# -- faults fired, nothing bypassed ----------------------------------------------------------------


def test_assert_fired_and_no_requests_bypassed_pass_when_faults_act(mesh):
    vs = mesh.route_fault("payments", abort=503)
    mesh.session().get("http://payments/")
    mesh.assert_fired()
    mesh.assert_fired(vs)
    mesh.assert_fired("payments-route-fault")
    mesh.assert_fired("VirtualService/default/payments-route-fault")
    mesh.assert_no_requests_bypassed()


def test_assert_fired_lists_the_requests_a_fault_missed(mesh):
    mesh.route_fault("payments", abort=503, match={"uri": {"prefix": "/never"}})
    mesh.session().get("http://payments/x")
    assert failure(mesh.assert_fired) == [
        "expected VirtualService/default/payments-route-fault http[0] (abort) to fire, "
        "it never did:",
        "    1 request to payments.default.svc.cluster.local:",
        "      GET /x → 200 in N ms (1 attempt: 127.0.0.1:PORT response 200)",
        "assert 1 == 0",
    ]
    assert failure(mesh.assert_fired, "other") == [
        "expected 'other' to fire, but no such fault is in this test's config "
        "(it declared: VirtualService/default/payments-route-fault http[0])",
        "assert []",
    ]


def test_assert_fired_needs_declared_faults(mesh):
    assert failure(mesh.assert_fired) == [
        "expected the faults of this test to fire, but it declared none",
        "assert []",
    ]


def test_assert_no_requests_bypassed_names_each_problem(mesh, payments):
    mesh.route_fault("payments", abort=503, match={"uri": {"prefix": "/never"}})
    mesh.route_fault("ratings", abort=503)
    mesh.session().get("http://payments/x")
    requests.get(f"http://127.0.0.1:{payments.port}/", timeout=5)  # bypasses the proxy
    assert failure(mesh.assert_no_requests_bypassed) == [
        "2 problems: traffic bypassed the proxy or a declared fault never applied:",
        "    no request to ratings went through the proxy",
        "    VirtualService/default/payments-route-fault http[0] (abort) never fired: "
        "1 request to payments:",
        "      GET /x → 200 in N ms (1 attempt: 127.0.0.1:PORT response 200)",
        "    requests this test made:",
        "      1 request to payments.default.svc.cluster.local:",
        "        GET /x → 200 in N ms (1 attempt: 127.0.0.1:PORT response 200)",
        "assert 2 == 0",
    ]


def test_assert_no_requests_bypassed_with_no_traffic_at_all(mesh):
    assert failure(mesh.assert_no_requests_bypassed) == [
        "1 problem: traffic bypassed the proxy or a declared fault never applied:",
        "    the proxy saw no requests in this test",
        "    hint: send traffic through chaos.session(), chaos.url or chaos.env; a client with "
        "its own proxy settings (or NO_PROXY) bypasses every fault",
        "assert 1 == 0",
    ]


def test_what_the_user_sees_points_at_the_test_line(inner):
    """The whole failure as pytest prints it: the user's line, the message, no plugin frames."""
    inner.makepyfile(
        test_pay="""
        def test_pay(chaos):
            chaos.route_fault("payments", abort=503)
            chaos.session().post("http://payments/pay")
            chaos.assert_retried("payments", times=1)
        """
    )
    result = inner.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       chaos.assert_retried("payments", times=1)',
            "E       AssertionError: expected 1 retry of payments, saw 0:",
            "E           1 request to payments.default.svc.cluster.local:",
            "E             POST /pay → 503 [[]FI[]] in * ms (no upstream attempt; route fault abort)",
            "E           hint: no request was retried: *",
            "E       assert 1 in [0]",
            "test_pay.py:4: AssertionError",
        ]
    )
    assert "pytest_plugin/" not in result.stdout.str(), "no frame of the plugin is shown"
