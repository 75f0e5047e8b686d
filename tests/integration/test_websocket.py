"""WebSocket through the mesh: a real ``websockets`` client through a real proxy (its forward
listener, ``CONNECT`` as the client does it) to real echo servers on 127.0.0.1."""

from __future__ import annotations

import socket
import textwrap
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from chaoskit.accesslog import format_json, format_text
from chaoskit.proxy.api import Proxy
from chaoskit.records import Record
from chaoskit.testing import EchoServer
from chaoskit.testing.upstream import free_port
from tests.builders import fault
from tests.integration.test_disconnects import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoServer]]:
    servers = {name: EchoServer(f"echo-{name}").start() for name in ("v1", "v2")}
    yield servers
    for server in servers.values():
        server.stop()


def chat_mesh(echoes: dict[str, EchoServer]) -> str:
    """``chat`` with two versions; ``x-canary: yes`` goes to v2, everything else to v1."""
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: chat}}
        spec:
          hosts: [chat]
          ports: [{{number: 8080, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints:
          - {{address: 127.0.0.1, ports: {{http: {echoes["v1"].port}}}, labels: {{version: v1}}}}
          - {{address: 127.0.0.1, ports: {{http: {echoes["v2"].port}}}, labels: {{version: v2}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: chat}}
        spec:
          host: chat
          subsets:
          - {{name: v1, labels: {{version: v1}}}}
          - {{name: v2, labels: {{version: v2}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: chat}}
        spec:
          hosts: [chat]
          http:
          - name: canary
            match: [{{headers: {{x-canary: {{exact: "yes"}}}}}}]
            route: [{{destination: {{host: chat, subset: v2}}}}]
          - name: stable
            route: [{{destination: {{host: chat, subset: v1}}}}]
        """)


@pytest.fixture(scope="module")
def ws_proxy(echoes, tmp_path_factory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(chat_mesh(echoes), seed=5, state_dir=state, gateway_ports={8080: 0}) as p:
        yield p


@pytest.fixture
def lines(ws_proxy) -> Iterator[list[Record]]:
    """The records in the order the proxy handed them to the access log."""
    seen: list[Record] = []
    ws_proxy.core.on_record.append(seen.append)
    yield seen
    ws_proxy.core.on_record.remove(seen.append)


@pytest.fixture
def mesh(ws_proxy, echoes) -> Proxy:
    ws_proxy.apply()
    ws_proxy.reset()
    for server in echoes.values():
        server.clear()
    return ws_proxy


def open_ws(proxy: Proxy, path: str = "/room", **kwargs) -> ClientConnection:
    return connect(
        f"ws://chat:8080{path}", proxy=proxy.url, open_timeout=10, close_timeout=2, **kwargs
    )


def logged(records: list[Record]) -> list[Record]:
    """``records`` once the socket's record has reached them (written when the socket ends)."""
    wait_for(lambda: len(records) >= 1)
    return records


def test_routes_by_header_and_records_the_socket_when_it_ends(mesh, echoes, lines):
    with open_ws(mesh, additional_headers={"x-canary": "yes"}) as ws:
        assert ws.response.headers["x-upstream"] == "echo-v2"
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01\x02")
        assert ws.recv(timeout=5) == b"\x00\x01\x02"
        assert lines == []  # nothing is logged at the 101: the socket is still open
    (record,) = logged(lines)
    assert record.status == 101 and record.route_name == "canary"
    assert record.upstream_host == echoes["v2"].address
    assert record.cluster == "outbound|8080|v2|chat.default.svc.cluster.local"
    assert record.flags == ("DC",)  # the client closed it
    ws_record = record.websocket
    assert ws_record is not None
    assert (ws_record.messages_from_client, ws_record.messages_to_client) == (2, 2)
    assert (record.bytes_received, record.bytes_sent) == (8, 8)
    assert (ws_record.closed_by, ws_record.close_code) == ("client", 1000)
    assert [(a.outcome, a.status) for a in record.attempts] == [("response", 101)]
    assert mesh.stats["http.downstream_cx_upgrades_total"] == 1
    text = format_text(record)
    assert '"GET /room HTTP/1.1" 101 DC via_upstream' in text
    assert text.endswith("messages=2/2 close=1000,client")
    assert '"websocket":{"messages_from_client":2' in format_json(record)
    (handshake,) = echoes["v2"].handshakes
    assert handshake.host == "chat:8080" and handshake.path == "/room"
    assert handshake.headers["x-envoy-attempt-count"] == "1"
    assert handshake.headers["x-request-id"] == record.request_id
    assert echoes["v1"].handshakes == []

    with open_ws(mesh) as ws:
        assert ws.response.headers["x-upstream"] == "echo-v1"


def test_weighted_destinations_spread_sockets_over_both_versions(mesh, echoes):
    mesh.apply(
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: chat}
            spec:
              hosts: [chat]
              http:
              - route:
                - {destination: {host: chat, subset: v1}, weight: 50}
                - {destination: {host: chat, subset: v2}, weight: 50}
            """)
    )
    names = []
    for _ in range(12):
        with open_ws(mesh) as ws:
            names.append(ws.response.headers["x-upstream"])
    assert set(names) == {"echo-v1", "echo-v2"}
    assert len(echoes["v1"].handshakes) + len(echoes["v2"].handshakes) == 12


def test_a_gateway_listener_routes_the_upgrade_by_authority(mesh, echoes, lines):
    mesh.apply(
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: web}
            spec:
              selector: {istio: ingressgateway}
              servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: web}
            spec:
              hosts: [chat.example.test]
              gateways: [web]
              http:
              - rewrite: {uri: /lobby}
                route: [{destination: {host: chat, subset: v2}}]
            """)
    )
    port = int(mesh.gateway_url(8080).rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with connect("ws://chat.example.test/room", sock=sock, proxy=None) as ws:
        assert ws.response.headers["x-upstream"] == "echo-v2"
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
    (record,) = logged(lines)
    assert record.listener == "gateway:8080" and record.status == 101
    (handshake,) = echoes["v2"].handshakes
    assert handshake.path == "/lobbyroom"  # the route's prefix rewrite of "/" reached it


def test_an_upstream_fault_abort_refuses_the_upgrade(mesh, echoes, lines):
    mesh.apply(fault("host: chat\nabort: {httpStatus: 403}\n"))
    with pytest.raises(InvalidStatus) as refused:
        open_ws(mesh)
    assert refused.value.response.status_code == 403
    (record,) = logged(lines)
    assert record.status == 403 and record.websocket is None
    assert record.attempts[0].faults == ("UpstreamFault/default/f:abort",)
    assert echoes["v1"].handshakes == []  # never reached the upstream


def test_a_virtual_service_fault_delays_the_handshake(mesh):
    mesh.apply(
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: chat}
            spec:
              hosts: [chat]
              http:
              - fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
                route: [{destination: {host: chat, subset: v1}}]
            """)
    )
    t0 = time.monotonic()
    with open_ws(mesh) as ws:
        assert time.monotonic() - t0 >= 0.4
        ws.send("x")
        assert ws.recv(timeout=5) == "x"


def test_the_socket_is_dropped_after_n_messages(mesh, echoes, lines):
    mesh.apply(fault("host: chat\nwebSocket: {close: {afterMessages: 2}}\n"))
    with open_ws(mesh) as ws:
        ws.send("one")
        assert ws.recv(timeout=5) == "one"  # messages 1 and 2 are relayed
        ws.send("two")  # the third is not: the connection drops
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is None  # no close frame: 1006 for the client
    (record,) = logged(lines)
    ws_record = record.websocket
    assert ws_record is not None
    assert (ws_record.closed_by, ws_record.close_code) == ("fault", 1006)
    assert (ws_record.messages_from_client, ws_record.messages_to_client) == (1, 1)
    assert "UC" in record.flags
    assert echoes["v1"].messages == 1  # "two" never reached the upstream


def test_a_reset_after_headers_drops_the_socket_right_after_the_101(mesh, lines):
    mesh.apply(fault("host: chat\nreset: {after: headers}\n"))
    with open_ws(mesh) as ws, pytest.raises(ConnectionClosedError) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is None
    (record,) = logged(lines)
    assert record.status == 101 and "UC" in record.flags
    assert record.websocket is not None and record.websocket.closed_by == "fault"


def test_the_socket_is_closed_with_a_code_after_a_time(mesh, lines):
    mesh.apply(fault("host: chat\nwebSocket: {close: {after: 300ms, code: 1011}}\n"))
    t0 = time.monotonic()
    with open_ws(mesh) as ws, pytest.raises(ConnectionClosedError) as closed:
        ws.recv(timeout=5)
    assert time.monotonic() - t0 >= 0.3
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    (record,) = logged(lines)
    assert record.websocket is not None and record.websocket.close_code == 1011


def test_messages_are_delayed(mesh):
    mesh.apply(fault("host: chat\nwebSocket: {messageDelay: 250ms}\n"))
    with open_ws(mesh) as ws:
        t0 = time.monotonic()
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
        assert time.monotonic() - t0 >= 0.5  # held on the way out and on the way back


def test_an_upstream_that_refuses_the_upgrade_is_recorded_with_its_status(mesh, lines):
    with pytest.raises(InvalidStatus) as refused:
        open_ws(mesh, path="/status/426")
    assert refused.value.response.status_code == 426
    (record,) = logged(lines)
    assert record.status == 426 and record.websocket is None
    assert [(a.outcome, a.status) for a in record.attempts] == [("response", 426)]


def test_an_endpoint_that_cannot_be_reached_is_a_connect_failure(mesh, lines):
    port = free_port()
    mesh.apply(
        textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {{name: chat}}
            spec:
              hosts: [chat]
              ports: [{{number: 8080, name: http, protocol: HTTP}}]
              resolution: STATIC
              endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{version: v1}}}}]
            """)
    )
    with pytest.raises(InvalidStatus) as refused:
        open_ws(mesh)
    assert refused.value.response.status_code == 502
    (record,) = logged(lines)
    assert record.status == 502 and "UF" in record.flags
    assert [a.outcome for a in record.attempts] == ["connect-failure"]


def test_sockets_do_not_block_each_other(mesh):
    """A delayed socket holds only its own messages."""
    mesh.apply(
        fault(
            "host: chat\nwebSocket: {messageDelay: 1s}\n"
            "match: [{headers: {x-slow: {exact: 'yes'}}}]\n"
        )
    )
    with open_ws(mesh, additional_headers={"x-slow": "yes"}) as slow, open_ws(mesh) as fast:
        t_slow = time.monotonic()
        slow.send("slow")  # held 1 s on the way to the upstream, and 1 s back
        t0 = time.monotonic()
        fast.send("fast")
        assert fast.recv(timeout=5) == "fast"
        assert time.monotonic() - t0 < 0.8
        assert slow.recv(timeout=5) == "slow"
        assert time.monotonic() - t_slow >= 2.0
