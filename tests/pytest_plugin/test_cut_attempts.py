"""The most common resilience test: a slow dependency, and the caller falls back. The attempt the
slowness cut off is evidence that the fault fired (issue 12, item 12): ``assert_fired`` passes
whether the route timeout (``504 UT``) or the caller's own timeout (``0 DC``) ended it."""

from __future__ import annotations

import re

import pytest
import requests

from .conftest import virtual_service

TIMEOUT_ROUTE = "[{route: [{destination: {host: payments}}], timeout: 300ms}]"


def test_a_route_timeout_during_an_upstream_fault_delay_counts_as_fired(mesh, payments):
    mesh.apply(virtual_service("payments", TIMEOUT_ROUTE))
    slow = mesh.fault("payments", delay="5s", name="slow-payments")
    answer = mesh.session().get("http://payments/pay", timeout=10)
    assert answer.status_code == 504  # the caller would fall back here
    mesh.assert_fired()
    mesh.assert_fired(slow)
    mesh.assert_timed_out("payments")
    (record,) = mesh.records
    (attempt,) = record.attempts
    assert (attempt.outcome, attempt.faults) == (
        "route-timeout",
        ("UpstreamFault/default/slow-payments:delay",),
    )
    with pytest.raises(AssertionError) as e:
        mesh.assert_retried("payments")
    listing = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", str(e.value))
    assert (
        "(1 attempt: 127.0.0.1:PORT route-timeout, faults UpstreamFault/default/slow-payments:delay"
        in listing
    )
    assert payments.requests == []  # cut during the delay: nothing reached the upstream


def test_a_caller_that_gives_up_during_an_upstream_fault_delay_counts_as_fired(mesh):
    mesh.fault("payments", delay="5s", name="slow-payments")
    with pytest.raises(requests.exceptions.ReadTimeout):
        mesh.session().get("http://payments/pay", timeout=0.3)  # the caller's own timeout
    mesh.assert_fired()
    (record,) = mesh.records
    assert (record.status, record.flags) == (0, ("DC",))
    (attempt,) = record.attempts
    assert attempt.outcome == "client-gone"
    assert attempt.faults == ("UpstreamFault/default/slow-payments:delay",)


def test_chaos_stats_shows_envoys_retry_counters(mesh, payments):
    route = "[{route: [{destination: {host: payments}}], retries: {attempts: 1, retryOn: 5xx}}]"
    mesh.apply(virtual_service("payments", route))
    payments.fail_first = 1
    assert mesh.session().get("http://payments/ok", timeout=10).status_code == 200
    assert mesh.session().get("http://payments/status/503", timeout=10).status_code == 503
    stats = mesh.stats("payments")
    assert stats["upstream_rq_retry"] == 2
    assert stats["upstream_rq_retry_success"] == 1  # /ok: its retry's answer was final
    assert stats["upstream_rq_retry_limit_exceeded"] == 1  # /status/503: failed again, URX
    assert stats["upstream_rq_retry_overflow"] == 0
