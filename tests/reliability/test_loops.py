"""A request that would route back into the proxy itself is refused, never recursed.

Before loop detection, each of these went round until a timeout (15 s, hundreds of nested
requests through a gateway) or forever (ALLOW_ANY passthrough has no timeout). Now: 502
``request loop detected``, flag ``LOOP``, a note in the record. Istio's egress-gateway pattern,
which legitimately sends mesh traffic to the proxy's own gateway listener, keeps working.
"""

from __future__ import annotations

import socket
import textwrap
import time

import pytest

from chaoskit.proxy.loops import HOPS_HEADER, MAX_HOPS
from chaoskit.testing.upstream import free_port
from tests.builders import ratings_vs, service_entry
from tests.reliability.conftest import healthy, session

GATEWAY_PORT = 8080


@pytest.fixture(scope="module")
def gw_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def proxy(upstreams, bad, dead_port, gw_port, tmp_path_factory):
    """This module's proxy serves a Gateway, to loop through it."""
    from chaoskit.proxy.api import Proxy
    from tests.reliability.conftest import base_mesh

    gateway = textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {{name: gw}}
        spec:
          selector: {{istio: ingressgateway}}
          servers:
          - port: {{number: {GATEWAY_PORT}, name: http, protocol: HTTP}}
            hosts: ["*"]
        """)
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(
        base_mesh(upstreams, bad, dead_port), gateway, seed=3, state_dir=state,
        gateway_ports={GATEWAY_PORT: gw_port},
    ) as p:  # fmt: skip
        yield p


def assert_refused(r, started: float) -> None:
    assert r.status_code == 502
    assert r.text == "request loop detected"
    assert r.headers["server"] == "envoy"
    assert time.monotonic() - started < 5  # refused at once, not ended by a timeout


#: Other spellings of the proxy's own address: each was forwarded round and round (one request
#: became 99 nested ones; eight exhausted 1024 descriptors and killed the proxy).
SPELLINGS = ["0.0.0.0", "0x7f000001", "2130706433", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]"]


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "0.0.0.0"])
def test_a_service_whose_endpoint_is_the_proxy_itself(mesh, client, address):
    mesh.apply(service_entry("self.example", mesh.port, address))
    t0 = time.monotonic()
    r = client.get("http://self.example/x", timeout=30)
    assert_refused(r, t0)
    (record,) = mesh.records  # one request, not one per trip round the loop
    assert record.flags == ("LOOP",) and record.details == "request_loop_detected"
    assert record.attempts[0].outcome == "loop"
    assert any("own forward-proxy listener" in n for n in record.notes)
    assert mesh.stats["http.downstream_rq_loop"] == 1
    assert healthy(mesh)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", *SPELLINGS])
def test_allow_any_passthrough_to_the_proxys_own_address(mesh, client, host):
    t0 = time.monotonic()
    r = client.get(f"http://{host}:{mesh.port}/x", timeout=30)
    assert_refused(r, t0)
    (record,) = mesh.records
    assert record.cluster == "PassthroughCluster" and record.flags == ("LOOP",)
    assert healthy(mesh)


def test_a_gateway_routing_to_itself_stops_after_a_few_hops(mesh, client, gw_port):
    mesh.apply(
        service_entry("loop.example", gw_port),
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: loop}
            spec:
              hosts: [loop.example]
              gateways: [gw, mesh]
              http:
              - route: [{destination: {host: loop.example, port: {number: 80}}}]
            """),
    )
    t0 = time.monotonic()
    r = client.get("http://loop.example/x", timeout=30)
    assert_refused(r, t0)
    records = mesh.records
    # the mesh hop, then the gateway MAX_HOPS times (each passing the 502 back), then refused
    assert len(records) == MAX_HOPS + 1
    refused = [rec for rec in records if "LOOP" in rec.flags]
    assert len(refused) == 1 and refused[0].listener == f"gateway:{GATEWAY_PORT}"
    assert any(f"{MAX_HOPS} times" in n for n in refused[0].notes)
    assert healthy(mesh)


def test_a_gateway_opened_by_a_reload_is_known_to_loop_detection_at_once(mesh, client, upstreams):
    # The proxy caches its own listener addresses; a listener opened later must not be missed.
    assert client.get("http://reviews:9080/").status_code == 200  # the cache is filled
    new_port = free_port()
    mesh.apply(
        service_entry("late-loop.example", new_port),
        textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {{name: late-gw}}
            spec:
              selector: {{istio: ingressgateway}}
              servers:
              - port: {{number: {new_port}, name: http, protocol: HTTP}}
                hosts: ["*"]
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {{name: late-loop}}
            spec:
              hosts: [late-loop.example]
              gateways: [late-gw, mesh]
              http:
              - route: [{{destination: {{host: late-loop.example, port: {{number: 80}}}}}}]
            """),
    )
    t0 = time.monotonic()
    r = client.get("http://late-loop.example/x", timeout=30)
    assert_refused(r, t0)
    refused = [rec for rec in mesh.records if "LOOP" in rec.flags]
    assert len(refused) == 1 and refused[0].listener == f"gateway:{new_port}"


def test_the_egress_gateway_pattern_still_works_and_the_hop_header_stays_inside(
    mesh, client, upstreams, gw_port
):
    external = upstreams["v2"]
    mesh.apply(
        service_entry("api.example.test", external.port),
        service_entry("egress.istio-system.svc.cluster.local", gw_port),
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: api-through-egress}
            spec:
              hosts: [api.example.test]
              gateways: [gw, mesh]
              http:
              - match: [{gateways: [mesh]}]
                route: [{destination: {host: egress.istio-system.svc.cluster.local, port: {number: 80}}}]
              - match: [{gateways: [gw]}]
                route: [{destination: {host: api.example.test, port: {number: 80}}}]
            """),
    )
    r = client.get("http://api.example.test/data", timeout=30)
    assert r.status_code == 200 and r.json()["upstream"] == "v2"
    assert {rec.listener for rec in mesh.records} == {"mesh", f"gateway:{GATEWAY_PORT}"}
    assert not any("LOOP" in rec.flags for rec in mesh.records)
    (received,) = external.requests
    assert HOPS_HEADER not in received.headers  # never leaks past the proxy's own listeners


def test_a_clients_hop_header_is_ignored_and_never_reaches_an_upstream(mesh, client, upstreams):
    # Only the proxy's own upstream connections may carry a hop count: a client's header neither
    # gets its request refused nor lifts the bound (it is dropped), and no upstream sees it.
    for value in ("1", "0", "-5", str(MAX_HOPS), "junk"):
        r = client.get("http://ratings:9080/", headers={HOPS_HEADER: value}, timeout=30)
        assert r.status_code == 200, value
        assert HOPS_HEADER not in upstreams["ratings"].requests[-1].headers
    r = client.get(f"http://{'127.0.0.1'}:{upstreams['ratings'].port}/", timeout=30)
    assert r.status_code == 200  # an ordinary passthrough to a loopback upstream is fine
    assert HOPS_HEADER not in upstreams["ratings"].requests[-1].headers


def test_a_loop_through_a_name_is_stopped_at_the_first_hop(mesh, client):
    # A name that resolves to this machine is not recognised by address; the request still
    # comes back over one of the proxy's own upstream connections, which the proxy knows.
    name = socket.gethostname()
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(name, mesh.port)}
    except OSError:
        pytest.skip(f"{name} does not resolve here")
    if not resolved or name.lower() == "localhost":
        pytest.skip(f"{name} does not resolve here")
    mesh.apply(service_entry("byname.example", mesh.port, name))
    t0 = time.monotonic()
    r = client.get("http://byname.example/x", timeout=30)
    assert r.status_code == 502 and time.monotonic() - t0 < 5
    records = mesh.records
    assert len(records) <= 2, records  # the request and at most its one refused echo
    assert mesh.stats["http.downstream_rq_loop"] == 1
    assert healthy(mesh)


def test_mirroring_into_the_proxy_itself_is_skipped(mesh, client, upstreams):
    mesh.apply(
        service_entry("self.example", mesh.port),
        ratings_vs("mirror: {host: self.example, port: {number: 80}}\n"),
    )
    with session(mesh.url) as s:
        r = s.get("http://ratings:9080/m", timeout=30)
    assert r.status_code == 200
    (record,) = mesh.records
    assert any("mirror" in n and "loop" in n for n in record.notes)


def test_the_admin_listener_is_never_reachable_through_the_proxy(mesh, client):
    # Nothing reachable through the proxy can change the proxy: the admin API answers local
    # clients directly, never a request the proxy would forward there, however it is spelled.
    admin_port = int(mesh.admin_url.rsplit(":", 1)[1])
    for host in ("127.0.0.1", "localhost", "0.0.0.0", "0x7f000001", "[::ffff:127.0.0.1]"):
        t0 = time.monotonic()
        assert_refused(client.post(f"http://{host}:{admin_port}/reset_counters", timeout=30), t0)
    with session() as direct:
        assert direct.get(f"{mesh.admin_url}/ready", timeout=10).status_code == 200


def test_connect_into_the_proxy_itself_is_refused(mesh):
    # Under ALLOW_ANY a CONNECT to a host outside the registry is tunnelled as it is; one to the
    # proxy's own listener would tunnel into itself, round and round. Refused however spelled.
    from tests.reliability.test_fail_closed import connect

    for host in ("127.0.0.1", "localhost", "0x7f000001", "[::1]", "[::ffff:127.0.0.1]"):
        s, head = connect(mesh.port, f"{host}:{mesh.port}")
        s.close()
        assert head.startswith(b"HTTP/1.1 502"), (host, head)
    assert mesh.stats["http.downstream_rq_loop"] == 5
    assert healthy(mesh)
