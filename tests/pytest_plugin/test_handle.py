"""The ``Chaos`` handle, used here through the real ``chaos`` fixture of this very test run."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from chaoskit_pytest.handle import Chaos, ChaosConfigWarning

from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.config.virtual_service import VirtualService
from chaoskit.errors import ConfigError
from chaoskit.testing import TcpEcho, Upstream
from tests.builders import fault as fault_yaml
from tests.builders import service_entry

from .conftest import virtual_service

# -- chaos.fault (config level) --------------------------------------------------------------


def test_fault_applies_a_validated_upstream_fault_and_returns_it(mesh: Chaos):
    fault = mesh.fault("payments", abort=503, first=2)
    assert isinstance(fault, UpstreamFault)
    assert fault.ref == "UpstreamFault/default/payments-fault-1"
    assert (fault.fqdn, fault.first_n, fault.actions) == (
        "payments.default.svc.cluster.local",
        2,
        ("abort",),
    )
    assert fault.abort is not None and fault.abort.http_status == 503
    assert fault in mesh.proxy.validation.mesh.upstream_faults
    second = mesh.fault("payments", delay="100ms", name="slow-payments")
    assert second.ref == "UpstreamFault/default/slow-payments"
    assert [d.ref for d in mesh.declared_faults] == [fault.ref, second.ref]


def test_fault_takes_the_yaml_spelling_of_its_keywords(mesh: Chaos):
    fault = mesh.fault("payments", slowBody=1000, percentage=50)  # type: ignore[call-arg]
    assert fault.percentage == 50
    assert mesh.fault("payments", abort=503, firstN=3).first_n == 3  # type: ignore[call-arg]
    assert fault.slow_body is not None and fault.slow_body.bytes_per_second == 1000
    route = mesh.route_fault("payments", abort=503, percentage=10)  # type: ignore[call-arg]
    assert isinstance(route, VirtualService)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"percentag": 5}, "no keyword 'percentag'; did you mean \"percent"),
        ({"percent": 5, "percentage": 5}, "'percentage' and 'percent': the same keyword twice"),
    ],
)
def test_an_unknown_fault_keyword_says_what_it_could_be(mesh: Chaos, kwargs, message):
    with pytest.raises(TypeError, match=message):
        mesh.fault("payments", abort=503, **kwargs)


def test_fault_with_an_invalid_combination_raises_config_error_and_changes_nothing(mesh: Chaos):
    before = mesh.proxy.validation
    with pytest.raises(ConfigError, match="percentage cannot be combined with firstN"):
        mesh.fault("payments", abort=503, percent=50, first=1)
    with pytest.raises(ConfigError, match="is not in the registry"):
        mesh.fault("nowhere", abort=503)
    assert mesh.proxy.validation is before


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        ("paymnts", 'not in the registry: the fault could never fire; did you mean "payments"?'),
        ("nowhere", "hosts in the registry: payments, ratings"),
    ],
)
def test_an_unknown_fault_host_names_the_hosts_of_the_registry(mesh: Chaos, host, hint):
    with pytest.raises(ConfigError, match=re.escape(f"spec.host: host {host!r}")) as raised:
        mesh.fault(host, abort=503)
    assert hint in str(raised.value)


def test_an_unknown_route_fault_host_gets_a_did_you_mean(mesh: Chaos):
    with pytest.raises(ConfigError, match=r'destination\.host: .*; did you mean "ratings"'):
        mesh.route_fault("ratngs", abort=503)


def test_a_known_fault_host_gets_no_hint(mesh: Chaos):
    with pytest.raises(ConfigError) as raised:
        mesh.fault("payments", abort=503, subset="v9")  # an error about something else
    assert "did you mean" not in str(raised.value) and "registry" not in str(raised.value)


# -- apply, isolation ----------------------------------------------------------------------------


def test_apply_accumulates_within_a_test(mesh: Chaos):
    mesh.apply(
        virtual_service("payments", "[{route: [{destination: {host: payments}}], timeout: 1s}]")
    )
    mesh.apply(virtual_service("ratings", "[{route: [{destination: {host: ratings}}]}]"))
    names = {vs.name for vs in mesh.proxy.validation.mesh.virtual_services}
    assert names == {"payments", "ratings"}
    assert {se.name for se in mesh.proxy.validation.mesh.service_entries} == {"payments", "ratings"}


def test_a_handle_undoes_its_config_records_and_counters(chaos_proxy, payments):
    first = Chaos(chaos_proxy, seed=1)
    first.begin()
    first.apply(service_entry("payments", payments.port))
    requests.get("http://payments/", proxies={"http": first.url}, timeout=5)
    assert len(first.records) == 1 and first.stats("payments")["upstream_rq_total"] == 1
    first.end()
    assert chaos_proxy.validation.mesh.service_entries == ()
    assert chaos_proxy.records == [] and chaos_proxy.stats == {}
    assert len(first.records) == 1, "the ended handle keeps its evidence"
    second = Chaos(chaos_proxy, seed=2)
    second.begin()
    assert second.records == [] and second.declared_faults == []
    second.end()


def test_reset_goes_back_to_the_marker_config(chaos_proxy, payments):
    handle = Chaos(chaos_proxy, seed=3, mark_sources=[service_entry("payments", payments.port)])
    handle.begin()
    handle.route_fault("payments", abort=503)
    assert handle.session().get("http://payments/").status_code == 503
    handle.reset()
    assert handle.records == [] and handle.declared_faults == []
    assert handle.session().get("http://payments/").status_code == 200
    handle.apply(virtual_service("payments", "[{route: [{destination: {host: payments}}]}]"))
    assert [se.name for se in chaos_proxy.validation.mesh.service_entries] == ["payments"]
    handle.end()


def test_validation_warnings_become_chaos_config_warnings(mesh: Chaos):
    vs = virtual_service(
        "payments",
        "[{route: [{destination: {host: payments}}], fault: {abort: {httpStatus: 503}}}]",
    )
    with pytest.warns(ChaosConfigWarning, match="Istio treats as 0%: it never fires"):
        mesh.apply(vs)


# -- route faults (end to end) --------------------------------------------------------------------


def test_route_fault_without_a_virtual_service_creates_one(mesh: Chaos, payments):
    vs = mesh.route_fault("payments", abort=503)
    assert (
        isinstance(vs, VirtualService) and vs.ref == "VirtualService/default/payments-route-fault"
    )
    s = mesh.session()
    assert s.post("http://payments/pay").status_code == 503
    assert payments.requests == []
    (record,) = mesh.records
    assert (record.status, record.flags, record.faults) == (503, ("FI",), ("abort",))
    mesh.assert_fired(vs)
    mesh.assert_no_requests_bypassed()


def test_route_fault_copies_an_existing_virtual_service(mesh: Chaos):
    mesh.apply(
        virtual_service(
            "payments",
            "[{route: [{destination: {host: payments}}], timeout: 3s, retries: {attempts: 2}}]",
        )
    )
    with pytest.warns(ChaosConfigWarning, match="never retried"):
        vs = mesh.route_fault("payments", abort=500)
    assert vs.ref == "VirtualService/default/payments"
    (rule,) = vs.http
    assert rule.timeout == 3 and rule.retries is not None and rule.retries.attempts == 2
    assert rule.fault is not None and rule.fault.abort is not None
    assert (rule.fault.abort.http_status, rule.fault.abort.percentage) == (500, 100)
    assert [v.name for v in mesh.proxy.validation.mesh.virtual_services] == ["payments"]
    assert mesh.session().get("http://payments/").status_code == 500
    mesh.assert_not_retried("payments")


def test_route_fault_with_match_narrows_the_fault(mesh: Chaos):
    mesh.apply(virtual_service("payments", "[{route: [{destination: {host: payments}}]}]"))
    vs = mesh.route_fault("payments", abort=503, match={"uri": {"prefix": "/pay"}})
    assert [r.fault is not None for r in vs.http] == [True, False]
    s = mesh.session()
    assert s.get("http://payments/pay").status_code == 503
    assert s.get("http://payments/other").status_code == 200
    created = mesh.route_fault(
        "ratings", delay="1ms", match={"headers": {"x-test": {"exact": "1"}}}
    )
    assert [r.fault is not None for r in created.http] == [True, False]
    assert s.get("http://ratings/", headers={"x-test": "1"}).status_code == 200
    assert mesh.records.where(host="ratings")[0].faults == ("delay",)


def test_route_fault_delay_is_seen_in_records_and_flags(mesh: Chaos):
    mesh.route_fault("payments", delay="200ms")
    t0 = time.monotonic()
    assert mesh.session().get("http://payments/").status_code == 200
    assert time.monotonic() - t0 >= 0.2
    (record,) = mesh.records.where(flags="DI")
    assert record.faults == ("delay",) and record.duration >= 0.2
    mesh.assert_fired()


# -- traffic helpers -------------------------------------------------------------------------------


def test_session_goes_through_the_proxy_and_trusts_its_ca(mesh: Chaos, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # ignored: trust_env is off
    s = mesh.session()
    assert s.trust_env is False and s.verify == str(mesh.proxy.ca_path)
    assert s.proxies == {"http": mesh.url, "https": mesh.url}
    assert s.get("http://payments/").json()["upstream"] == "payments"
    named = mesh.session(workload="checkout")
    named.get("http://payments/")
    assert [r.source for r in mesh.records] == ["", "checkout"]
    assert mesh.records.where(source="checkout")[0].source == "checkout"


def test_proxy_url_as_sends_requests_as_a_workload(mesh: Chaos):
    url = mesh.proxy_url_as("checkout")
    assert url.startswith("http://checkout:") and url.endswith(f"@127.0.0.1:{mesh.proxy.port}")
    requests.get("http://payments/", proxies={"http": url}, timeout=10)
    assert [r.source for r in mesh.records] == ["checkout"]


def test_url_for_is_deprecated_and_names_its_replacement(mesh: Chaos):
    with pytest.warns(DeprecationWarning, match=r"use chaos\.proxy_url_as\(workload\)") as seen:
        url = mesh.url_for("checkout")
    assert url == mesh.proxy_url_as("checkout")
    assert seen[0].filename == __file__  # it points at the caller's line


def test_env_sends_a_subprocess_through_the_proxy(mesh: Chaos):
    env = mesh.env
    assert env["HTTP_PROXY"] == env["https_proxy"] == mesh.url
    assert env["NO_PROXY"] == env["no_proxy"] == ""
    ca = str(mesh.proxy.ca_path)
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == env["CURL_CA_BUNDLE"] == ca
    assert mesh.env_for("checkout")["HTTP_PROXY"] == mesh.proxy.url_for("checkout")
    code = "import urllib.request; print(urllib.request.urlopen('http://payments/x').status)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=mesh.env_for("checkout"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == "200", out.stderr
    (record,) = mesh.records
    assert (record.path, record.source) == ("/x", "checkout")


# -- evidence ----------------------------------------------------------------------------------


def test_records_where_filters(mesh: Chaos):
    s = mesh.session()
    s.get("http://payments/status/503")
    s.post("http://payments/pay?x=1")
    s.get("http://ratings/")
    records = mesh.records
    assert len(records) == 3
    assert [r.path for r in records.where(host="payments")] == ["/status/503", "/pay?x=1"]
    assert len(records.where(host="payments.default.svc.cluster.local")) == 2
    assert [r.status for r in records.where(status="5xx")] == [503]
    assert len(records.where(status={200, 503})) == 3
    assert [r.path for r in records.where(path="/pay")] == ["/pay?x=1"]
    assert [r.method for r in records.where(method="post")] == ["POST"]
    assert records.where(host="ratings", status=503) == []
    assert isinstance(records.where(), list) and isinstance(records[:1], type(records))


def test_stats_by_host(mesh: Chaos):
    s = mesh.session()
    s.get("http://payments/status/503")
    s.get("http://payments/")
    counters = mesh.stats("payments")
    assert counters["upstream_rq_total"] == 2 and counters["upstream_rq_503"] == 1, mesh.stats()
    assert counters["upstream_rq_retry"] == 0, "a counter that never moved reads 0"
    assert mesh.stats()["http.downstream_rq_total"] == 2
    cluster = mesh.records[0].cluster
    assert cluster == "outbound|80||payments.default.svc.cluster.local"
    assert mesh.stats(cluster) == counters
    assert mesh.stats("ratings") == {}


def test_records_wait_for_requests_still_in_flight(mesh: Chaos):
    mesh.route_fault("payments", delay="400ms")
    with pytest.raises(requests.exceptions.ReadTimeout):
        mesh.session().get("http://payments/", timeout=0.1)
    (record,) = mesh.records  # written when the proxy finished, after the client gave up
    assert record.faults == ("delay",)


def test_describe_lists_seed_faults_and_requests(mesh: Chaos):
    mesh.route_fault("payments", abort=503)
    mesh.session().get("http://payments/a")
    text = mesh.describe()
    assert text.splitlines()[0] == (
        f"seed {mesh.seed} (session seed {mesh.session_seed}: "
        f"replay with --chaos-seed={mesh.session_seed})"
    )
    assert (
        "  VirtualService/default/payments-route-fault http[0] (abort): fired in 1 request" in text
    )
    assert "    GET /a → 503 [FI] in " in text


# -- UpstreamFault end to end: waits for the resilience pipeline -----------------------------------


def test_upstream_fault_end_to_end(mesh: Chaos, payments: Upstream):
    mesh.apply(
        virtual_service(
            "payments",
            "[{route: [{destination: {host: payments}}], retries: {attempts: 3, retryOn: 5xx}}]",
        )
    )
    fault = mesh.fault("payments", abort=503, first=2)
    assert mesh.session().post("http://payments/pay").status_code == 200
    (record,) = mesh.records
    assert [a.status for a in record.attempts] == [503, 503, 200]
    assert record.attempts[0].faults == (f"{fault.ref}:abort",)
    assert len(payments.requests) == 1, "aborted attempts never reach the upstream"
    mesh.assert_fired(fault)
    mesh.assert_retried("payments", times=2)
    mesh.assert_no_requests_bypassed()
    assert mesh.stats("payments")["upstream_rq_retry"] == 2
    mesh.reset()  # undoes every apply, the ServiceEntry too
    mesh.apply(service_entry("payments", payments.port))
    mesh.apply(
        virtual_service(
            "payments",
            "[{route: [{destination: {host: payments}}], retries: {attempts: 1, perTryTimeout: 100ms}}]",
        )
    )
    mesh.fault("payments", delay="300ms")
    mesh.session().get("http://payments/")
    mesh.assert_timed_out("payments")


# -- TCP services ------------------------------------------------------------------------------


def test_tcp_address_opens_a_listener_and_tcp_faults_are_evidence(chaos: Chaos) -> None:
    with TcpEcho(b"hello\n") as echo:
        chaos.apply(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: redis}\n"
            "spec:\n  hosts: [redis]\n  addresses: [240.240.0.10]\n  ports: [{number: 6379, name: tcp-redis, protocol: TCP}]\n"
            f"  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{tcp-redis: "
            f"{echo.port}}}}}]\n",
            fault_yaml("host: redis\nlimitData: {bytes: 4}\n", "cut-redis"),
        )
        address = chaos.tcp_address("redis", 6379)
        assert chaos.tcp_address("redis", 6379) == address  # opened once
        with socket.create_connection(address, timeout=5) as sock:
            received = b""
            while chunk := sock.recv(100):
                received += chunk
        assert received == b"hell"
        deadline = time.monotonic() + 5
        while not chaos.proxy.records and time.monotonic() < deadline:
            threading.Event().wait(0.01)  # a connection's record is written as it closes
        chaos.assert_fired("cut-redis")
        assert chaos.stats("redis")["upstream_cx_total"] == 1
