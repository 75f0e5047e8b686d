"""UpstreamFault: faults below the retry layer, per attempt, so retries and timeouts see them."""

from __future__ import annotations

import textwrap
import time

import pytest
import requests

from tests.builders import fault, ratings_vs


def test_first_two_attempts_abort_and_retries_recover(mesh, client, upstreams):
    mesh.apply(
        fault("host: ratings\nabort: {httpStatus: 503}\nfirstN: 2\n"),
        ratings_vs("retries: {attempts: 3, retryOn: 5xx}\n"),
    )
    r = client.get("http://ratings:9080/pay")
    assert r.status_code == 200
    record = mesh.records[-1]
    assert [(a.status, a.faults) for a in record.attempts] == [
        (503, ("UpstreamFault/default/f:abort",)),
        (503, ("UpstreamFault/default/f:abort",)),
        (200, ()),
    ]
    assert len(upstreams["ratings"].requests) == 1  # injected attempts never reached it
    # the next request is not faulted any more: firstN counts attempts since the fault was applied
    assert client.get("http://ratings:9080/pay").status_code == 200
    assert len(mesh.records[-1].attempts) == 1


def test_without_retries_the_client_sees_the_injected_status_with_retry_after(mesh, client):
    mesh.apply(fault("host: ratings\nabort: {httpStatus: 429, headers: {retry-after: '2'}}\n"))
    r = client.get("http://ratings:9080/")
    assert r.status_code == 429 and r.headers["retry-after"] == "2"


def test_connect_reset_is_a_connect_failure_for_retries(mesh, client):
    mesh.apply(
        fault("host: ratings\nreset: {after: connect}\nsequence: [reset, pass]\n"),
        ratings_vs("retries: {attempts: 1, retryOn: connect-failure}\n"),
    )
    assert client.get("http://ratings:9080/").status_code == 200
    assert [a.outcome for a in mesh.records[-1].attempts] == ["connect-failure", "response"]


def test_hang_is_ended_by_the_per_try_timeout(mesh, client):
    mesh.apply(
        fault("host: ratings\nhang: {}\nfirstN: 1\n"),
        ratings_vs("retries: {attempts: 2, perTryTimeout: 200ms, retryOn: reset}\n"),
    )
    t0 = time.monotonic()
    assert client.get("http://ratings:9080/").status_code == 200
    assert 0.2 <= time.monotonic() - t0 < 1.5
    assert [a.outcome for a in mesh.records[-1].attempts] == ["per-try-timeout", "response"]


def test_delay_counts_against_the_route_timeout(mesh, client):
    mesh.apply(fault("host: ratings\ndelay: {fixedDelay: 500ms}\n"), ratings_vs("timeout: 200ms\n"))
    t0 = time.monotonic()
    r = client.get("http://ratings:9080/")
    assert r.status_code == 504 and 0.2 <= time.monotonic() - t0 < 1.0


def test_reset_after_headers_cuts_the_response(mesh, upstreams):
    mesh.apply(fault("host: ratings\nreset: {afterBytes: 5}\n"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get("http://ratings:9080/", proxies={"http": mesh.url}, timeout=10)
    record = mesh.records[-1]
    assert record.status == 200 and "UC" in record.flags
    assert record.attempts[0].outcome == "reset-after-headers"


def test_truncated_and_corrupted_bodies(mesh, client):
    mesh.apply(fault("host: ratings\ntruncateBody: {afterBytes: 10}\n"))
    r = client.get("http://ratings:9080/")
    assert r.status_code == 200 and len(r.content) == 10
    mesh.apply(fault("host: ratings\ncorruptBody: {bytes: 3}\n"))
    r = client.get("http://ratings:9080/")
    # the upstream answers ASCII JSON; each corrupted byte is XOR 0xff, so it becomes >= 0x80
    assert sum(b >= 0x80 for b in r.content) == 3


def test_subset_targeting_only_hits_that_subset(mesh, client):
    mesh.apply(
        fault("host: reviews\nsubset: v2\nabort: {httpStatus: 500}\n"),
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - match: [{headers: {end-user: {exact: jason}}}]
                route: [{destination: {host: reviews, subset: v2}}]
              - route: [{destination: {host: reviews, subset: v1}}]
            """),
    )
    assert client.get("http://reviews:9080/", headers={"end-user": "jason"}).status_code == 500
    assert client.get("http://reviews:9080/").status_code == 200


def test_percentage_is_per_attempt_and_seeded(mesh, client):
    mesh.apply(fault("host: ratings\nabort: {httpStatus: 503}\npercentage: {value: 50}\n"))
    first = [client.get("http://ratings:9080/").status_code for _ in range(60)]
    mesh.reset()
    second = [client.get("http://ratings:9080/").status_code for _ in range(60)]
    assert first == second and {200, 503} == set(first)
