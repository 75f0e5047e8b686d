"""Timeouts, retries and VirtualService faults through the real proxy (more with issue #4)."""

from __future__ import annotations

import textwrap
import time

from chaoskit.testing import Upstream


def vs(spec: str, name: str = "ratings") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}}}\nspec:\n" + textwrap.indent(textwrap.dedent(spec), "  ")
    )


def flaky_service(up: Upstream) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: flaky}}
        spec:
          hosts: [flaky]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {up.port}}}}}]
        """)


def test_route_timeout_answers_504_ut(mesh, client):
    mesh.apply(
        vs("""
        hosts: [ratings]
        http:
        - route: [{destination: {host: ratings}}]
          timeout: 300ms
    """)
    )
    t0 = time.monotonic()
    r = client.get("http://ratings:9080/delay/2000")
    elapsed = time.monotonic() - t0
    assert r.status_code == 504 and r.text == "upstream request timeout"
    assert 0.3 <= elapsed < 1.5
    assert mesh.records[-1].flags == ("UT",)


def test_default_timeout_is_15s_classic(mesh):
    assert mesh.validation.mesh.defaults.route_timeout == 15.0


def test_retries_recover_from_transient_503s(mesh, client):
    with Upstream("flaky", fail_first=2) as up:
        mesh.apply(
            flaky_service(up),
            vs(
                """
            hosts: [flaky]
            http:
            - route: [{destination: {host: flaky}}]
              retries: {attempts: 3, retryOn: 5xx}
        """,
                name="flaky",
            ),
        )
        r = client.get("http://flaky/")
        assert r.status_code == 200
        assert [q.headers["x-envoy-attempt-count"] for q in up.requests] == ["1", "2", "3"]
    record = mesh.records[-1]
    assert [a.status for a in record.attempts] == [503, 503, 200]
    assert record.flags == ()


def test_retries_exhausted_pass_the_last_answer_with_urx(mesh, client):
    with Upstream("down", fail_first=100) as up:
        mesh.apply(
            flaky_service(up),
            vs(
                """
            hosts: [flaky]
            http:
            - route: [{destination: {host: flaky}}]
              retries: {attempts: 2, retryOn: "503"}
        """,
                name="flaky",
            ),
        )
        r = client.get("http://flaky/")
        assert r.status_code == 503 and len(up.requests) == 3
    assert mesh.records[-1].flags == ("URX",)


def test_istio_default_retry_on_does_not_retry_a_503(mesh, client):
    with Upstream("once", fail_first=1) as up:
        mesh.apply(
            flaky_service(up),
            vs(
                """
            hosts: [flaky]
            http:
            - route: [{destination: {host: flaky}}]
              retries: {attempts: 2}
        """,
                name="flaky",
            ),
        )
        assert client.get("http://flaky/").status_code == 503
        assert len(up.requests) == 1


def test_per_try_timeout_then_success_on_another_attempt(mesh, client):
    mesh.apply(
        vs("""
        hosts: [ratings]
        http:
        - route: [{destination: {host: ratings}}]
          retries: {attempts: 2, perTryTimeout: 200ms, retryOn: reset}
    """)
    )
    t0 = time.monotonic()
    r = client.get("http://ratings:9080/delay/1000")
    assert r.status_code == 504
    assert 0.6 <= time.monotonic() - t0 < 2.0  # 3 tries × 200 ms plus back-off
    record = mesh.records[-1]
    assert [a.outcome for a in record.attempts] == ["per-try-timeout"] * 3
    assert record.flags == ("URX", "UT")


def test_fault_abort_is_not_retried(mesh, client, upstreams):
    mesh.apply(
        vs("""
        hosts: [ratings]
        http:
        - fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
          retries: {attempts: 3, retryOn: 5xx}
          route: [{destination: {host: ratings}}]
    """)
    )
    r = client.get("http://ratings:9080/")
    assert (r.status_code, r.text) == (503, "fault filter abort")
    assert upstreams["ratings"].requests == []
    assert mesh.records[-1].flags == ("FI",)


def test_fault_delay_for_one_user_only(mesh, client):
    mesh.apply(
        vs("""
        hosts: [ratings]
        http:
        - match: [{headers: {end-user: {exact: jason}}}]
          fault: {delay: {fixedDelay: 700ms, percentage: {value: 100}}}
          route: [{destination: {host: ratings}}]
        - route: [{destination: {host: ratings}}]
    """)
    )
    t0 = time.monotonic()
    assert client.get("http://ratings:9080/", headers={"end-user": "jason"}).status_code == 200
    assert 0.7 <= time.monotonic() - t0 < 2.0
    assert mesh.records[-1].flags == ("DI",)
    t0 = time.monotonic()
    assert client.get("http://ratings:9080/").status_code == 200
    assert time.monotonic() - t0 < 0.5


def test_delay_does_not_count_against_the_route_timeout(mesh, client):
    mesh.apply(
        vs("""
        hosts: [ratings]
        http:
        - fault: {delay: {fixedDelay: 500ms, percentage: {value: 100}}}
          timeout: 300ms
          route: [{destination: {host: ratings}}]
    """)
    )
    assert client.get("http://ratings:9080/").status_code == 200


def test_abort_percentage_is_seeded_and_plausible(mesh, client):
    mesh.apply(
        vs("""
        hosts: [ratings]
        http:
        - fault: {abort: {httpStatus: 500, percentage: {value: 25}}}
          route: [{destination: {host: ratings}}]
    """)
    )
    first = [client.get("http://ratings:9080/").status_code for _ in range(200)]
    mesh.reset()
    second = [client.get("http://ratings:9080/").status_code for _ in range(200)]
    assert first == second
    aborted = first.count(500)
    assert 50 - 4.5 * 6.12 <= aborted <= 50 + 4.5 * 6.12  # binomial(200, 0.25): sigma 6.12


def test_mesh_config_switches_to_current_istio_defaults(mesh, client, upstreams):
    from chaoskit.testing.upstream import free_port

    dead = free_port()
    pool = textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: pool}}
        spec:
          hosts: [pool]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints:
          - {{address: 127.0.0.1, ports: {{http: {dead}}}}}
          - {{address: 127.0.0.1, ports: {{http: {upstreams["other"].port}}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: pool}}
        spec: {{host: pool, trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}}}
        """)
    mesh.apply(pool)  # classic defaults: no retries, the dead endpoint's failure reaches the client
    assert [client.get("http://pool/").status_code for _ in range(2)] == [503, 200]
    assert mesh.records[0].flags == ("UF",)
    mesh.apply(
        pool,
        "apiVersion: chaoskit.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {defaults: istio-current}\n",
    )
    mesh.reset()
    assert [client.get("http://pool/").status_code for _ in range(2)] == [200, 200]
    first = mesh.records[-2]
    assert [a.outcome for a in first.attempts] == ["connect-failure", "response"]  # default retry
    assert mesh.validation.mesh.defaults.route_timeout is None
