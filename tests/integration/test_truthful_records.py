"""Records and counters that tell the truth, through a real proxy (issue 12, items 12 and 13).

- An attempt cut off by the end of its request is in the record: a client that hangs up during
  an UpstreamFault delay leaves ``0 DC`` *with* the attempt, its endpoint and its fault, and the
  access log says ``attempts=1``.
- With ``maxRetries`` full, a retry is refused at once (``UO``) and ``upstream_rq_retry`` counts
  only the retries that reached the upstream.
"""

from __future__ import annotations

import socket
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from chaoskit.accesslog import format_text
from tests.builders import fault, ratings_vs

CLUSTER = "cluster.outbound|9080||ratings.default.svc.cluster.local"


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(0.01)
    return bool(predicate())


def test_a_client_that_hangs_up_during_an_upstream_fault_delay_leaves_the_attempt(mesh, upstreams):
    mesh.apply(fault("host: ratings\ndelay: {fixedDelay: 10s}\n", name="slow-ratings"))
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", mesh.port), timeout=5) as s:
        s.sendall(b"GET http://ratings:9080/x HTTP/1.1\r\nHost: ratings:9080\r\n\r\n")
        threading.Event().wait(0.3)
    assert wait_for(lambda: len(mesh.records) == 1)
    (record,) = mesh.records
    assert time.monotonic() - t0 < 5.0  # not the 10 s delay
    assert (record.status, record.flags) == (0, ("DC",))
    (attempt,) = record.attempts
    assert attempt.endpoint == f"127.0.0.1:{upstreams['ratings'].port}"
    assert attempt.outcome == "client-gone" and attempt.status is None
    assert attempt.faults == ("UpstreamFault/default/slow-ratings:delay",)
    assert 0.1 < attempt.duration < 5.0
    line = format_text(record)
    assert " 0 DC downstream_remote_disconnect " in line
    assert " attempts=1 faults=UpstreamFault/default/slow-ratings:delay " in line
    assert upstreams["ratings"].requests == []  # cut in the delay, before the wire


def test_max_retries_counts_only_retries_that_reached_the_upstream(mesh, upstreams):
    # Every attempt waits 500 ms (an UpstreamFault delay, below the retry layer), then the
    # upstream answers 503. Four requests fail together; maxRetries: 1 lets one retry run, so
    # the others are refused at once with UO, and upstream_rq_retry counts what was sent.
    mesh.apply(
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: ratings}
            spec:
              host: ratings
              trafficPolicy: {connectionPool: {http: {maxRetries: 1}}}
            """),
        ratings_vs("retries: {attempts: 1, retryOn: 5xx}\n"),
        fault("host: ratings\ndelay: {fixedDelay: 500ms}\n"),
    )
    n = 4

    def one(_: int) -> tuple[int, float]:
        t0 = time.monotonic()
        r = requests.get("http://ratings:9080/status/503", proxies={"http": mesh.url}, timeout=10)
        return r.status_code, time.monotonic() - t0

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(one, range(n)))
    assert [status for status, _ in answers] == [503] * n
    assert wait_for(lambda: len(mesh.records) == n)
    reached = len(upstreams["ratings"].requests)
    stats = mesh.stats
    retries = stats[f"{CLUSTER}.upstream_rq_retry"]
    overflows = stats[f"{CLUSTER}.upstream_rq_retry_overflow"]
    assert retries == reached - n  # every counted retry reached the upstream
    assert retries + overflows == n  # each failed first try was retried or refused
    assert overflows >= 1
    assert stats[f"{CLUSTER}.upstream_rq_retry_limit_exceeded"] == retries  # retried, failed again
    assert stats.get(f"{CLUSTER}.upstream_rq_retry_success", 0) == 0
    refused = [r for r in mesh.records if "UO" in r.flags]
    assert len(refused) == overflows and all(len(r.attempts) == 1 for r in refused)
    # refused at once: a refused request took one 500 ms attempt, not that plus a retry
    assert min(elapsed for _, elapsed in answers) < 0.9
