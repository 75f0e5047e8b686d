"""Circuit breakers and outlier detection, as in Istio's circuit-breaking task."""

from __future__ import annotations

import collections
import textwrap
from concurrent.futures import ThreadPoolExecutor

import requests

from chaoskit.testing import Upstream
from tests.builders import fault, ratings_vs


def breaker_rule(pool: str, outlier: str = "", retry_budget: str = "") -> str:
    return (
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: ratings}}
        spec:
          host: ratings
          trafficPolicy:
            connectionPool: {pool}
        """)
        + (f"    outlierDetection: {outlier}\n" if outlier else "")
        + (f"    retryBudget: {retry_budget}\n" if retry_budget else "")
    )


def concurrent(mesh, n: int, path: str) -> list[requests.Response]:
    def one(_: int) -> requests.Response:
        return requests.get(f"http://ratings:9080{path}", proxies={"http": mesh.url}, timeout=10)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_one_connection_one_pending_then_overflow(mesh):
    mesh.apply(
        breaker_rule(
            "{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}}"
        )
    )
    ok = concurrent(mesh, 2, "/delay/300")
    assert [r.status_code for r in ok] == [200, 200]  # one active, one pending: both served
    answers = concurrent(mesh, 3, "/delay/400")
    codes = collections.Counter(r.status_code for r in answers)
    assert codes == {200: 2, 503: 1}
    (overflowed,) = [r for r in answers if r.status_code == 503]
    assert overflowed.headers["x-envoy-overloaded"] == "true"
    assert overflowed.text.endswith("reset reason: overflow")
    assert any(rec.flags == ("UO",) for rec in mesh.records)
    assert (
        mesh.stats[
            "cluster.outbound|9080||ratings.default.svc.cluster.local.upstream_rq_pending_overflow"
        ]
        == 1
    )


def test_overflow_is_never_retried(mesh):
    mesh.apply(
        breaker_rule("{http: {http2MaxRequests: 1}}"),
        ratings_vs("retries: {attempts: 3, retryOn: 5xx}\n"),
    )
    answers = concurrent(mesh, 2, "/delay/300")
    assert sorted(r.status_code for r in answers) == [200, 503]
    overflowed = next(rec for rec in mesh.records if rec.status == 503)
    assert len(overflowed.attempts) == 1 and overflowed.attempts[0].outcome == "overflow"


def test_a_retry_budget_caps_concurrent_retries_and_replaces_max_retries(mesh):
    # Every attempt is answered 503 after 300 ms (an UpstreamFault, below the retry layer).
    # Six requests fail together; the budget (0 % of the traffic, at least 3 at once) lets
    # three of them retry; the other three keep their 503, flagged UO. maxRetries: 100 is
    # ignored, as Envoy ignores max_retries once a retry budget is set.
    mesh.apply(
        breaker_rule(
            "{http: {maxRetries: 100}}",
            retry_budget="{percent: 0, minRetryConcurrency: 3}",
        ),
        ratings_vs("retries: {attempts: 1, retryOn: 5xx}\n"),
        fault("host: ratings\ndelay: {fixedDelay: 300ms}\nabort: {httpStatus: 503}\n"),
    )
    answers = concurrent(mesh, 6, "/")
    assert [r.status_code for r in answers] == [503] * 6
    records = [r for r in mesh.records if r.status == 503][-6:]
    skipped = [r for r in records if "UO" in r.flags]
    retried = [r for r in records if len(r.attempts) == 2]
    assert len(skipped) == 3 and all(len(r.attempts) == 1 for r in skipped)
    assert len(retried) == 3 and all(r.flags == ("URX",) for r in retried)
    assert (
        mesh.stats[
            "cluster.outbound|9080||ratings.default.svc.cluster.local.upstream_rq_retry_overflow"
        ]
        == 3
    )


def outlier_mesh(mesh, bad: Upstream, good: Upstream, outlier: str) -> None:
    mesh.apply(
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: pool}}
        spec:
          hosts: [pool]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints:
          - {{address: 127.0.0.1, ports: {{http: {bad.port}}}, labels: {{role: bad}}}}
          - {{address: 127.0.0.1, ports: {{http: {good.port}}}, labels: {{role: good}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: pool}}
        spec:
          host: pool
          trafficPolicy:
            loadBalancer: {{simple: ROUND_ROBIN}}
            outlierDetection: {outlier}
        """)
    )


def test_a_failing_endpoint_is_ejected(mesh, client):
    with Upstream("bad", fail_first=1000) as bad, Upstream("good") as good:
        outlier_mesh(
            mesh,
            bad,
            good,
            "{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}",
        )
        codes = [client.get("http://pool/").status_code for _ in range(10)]
        assert codes[0] == 503 and codes[1:] == [200] * 9
        assert len(bad.requests) == 1
        clusters = requests.get(f"{mesh.admin_url}/clusters", timeout=5).text
        assert (
            f"outbound|80||pool.default.svc.cluster.local::127.0.0.1:{bad.port}::health_flags::/failed_outlier_check"
            in clusters
        )
        assert (
            mesh.stats[
                "cluster.outbound|80||pool.default.svc.cluster.local.outlier_detection.ejections_active"
            ]
            == 1
        )


def test_all_endpoints_ejected_is_503_no_healthy_upstream(mesh, client):
    with Upstream("bad1", fail_first=1000) as bad, Upstream("bad2", fail_first=1000) as bad2:
        outlier_mesh(mesh, bad, bad2, "{consecutive5xxErrors: 1, maxEjectionPercent: 100}")
        assert [client.get("http://pool/").status_code for _ in range(2)] == [503, 503]
        r = client.get("http://pool/")
        assert (r.status_code, r.text) == (503, "no healthy upstream")
        assert mesh.records[-1].flags == ("UH",)


def test_default_max_ejection_percent_never_ejects_with_two_endpoints(mesh, client):
    with Upstream("bad", fail_first=1000) as bad, Upstream("good") as good:
        outlier_mesh(mesh, bad, good, "{consecutive5xxErrors: 1}")
        codes = [client.get("http://pool/").status_code for _ in range(6)]
        assert codes.count(503) == 3  # round robin keeps sending every other request to bad


def test_ejections_are_per_calling_workload(mesh, client):
    with Upstream("bad", fail_first=1000) as bad, Upstream("good") as good:
        outlier_mesh(mesh, bad, good, "{consecutive5xxErrors: 1, maxEjectionPercent: 100}")
        named = {"http": mesh.url_for("productpage")}
        codes = [
            requests.get("http://pool/", proxies=named, timeout=5).status_code for _ in range(4)
        ]
        assert codes == [503, 200, 200, 200]  # productpage's sidecar ejected the bad endpoint
        # an anonymous caller has its own sidecar, which has not seen a failure yet
        assert client.get("http://pool/").status_code == 503
