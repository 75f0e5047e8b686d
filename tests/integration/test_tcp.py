"""TCP listeners through a real Proxy to real TCP echo servers on 127.0.0.1: tcp routes,
connection limits, TCP UpstreamFaults, records and access-log lines."""

from __future__ import annotations

import socket
import struct
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from chaoskit.accesslog import format_json, format_text
from chaoskit.errors import ProxyError
from chaoskit.proxy.api import Proxy
from chaoskit.records import Record
from chaoskit.testing import TcpEcho
from chaoskit.testing.upstream import free_port
from tests.builders import fault

pytestmark = pytest.mark.integration

REDIS = "redis.default.svc.cluster.local"
V1 = f"outbound|6379|v1|{REDIS}"


@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, TcpEcho]]:
    servers = {name: TcpEcho(f"{name}\n".encode()).start() for name in ("v1", "v2")}
    yield servers
    for server in servers.values():
        server.stop()


def mesh_yaml(echoes: dict[str, TcpEcho]) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: redis}}
        spec:
          hosts: [redis]
          ports: [{{number: 6379, name: tcp-redis, protocol: TCP}}]
          resolution: STATIC
          endpoints:
          - {{address: 127.0.0.1, ports: {{tcp-redis: {echoes["v1"].port}}}, labels: {{version: v1}}}}
          - {{address: 127.0.0.1, ports: {{tcp-redis: {echoes["v2"].port}}}, labels: {{version: v2}}}}
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: down}}
        spec:
          hosts: [down]
          ports: [{{number: 5432, name: tcp-pg, protocol: TCP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{tcp-pg: {free_port()}}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {{name: redis}}
        spec:
          host: redis
          subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {{name: canary}}
        spec: {{labels: {{app: checkout, track: canary}}}}
        """)


TO_V1 = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: redis}
spec:
  hosts: [redis]
  tcp:
  - match: [{sourceLabels: {track: canary}}]
    route: [{destination: {host: redis, subset: v2}}]
  - route: [{destination: {host: redis, subset: v1}}]
"""
HALF = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: redis}
spec:
  hosts: [redis]
  tcp:
  - route:
    - {destination: {host: redis, subset: v1}, weight: 50}
    - {destination: {host: redis, subset: v2}, weight: 50}
"""


@pytest.fixture(scope="module")
def proxy(echoes: dict[str, TcpEcho], tmp_path_factory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("state")
    with Proxy(mesh_yaml(echoes), seed=5, state_dir=state, tcp_ports={"redis:6379": 0}) as p:
        yield p


@pytest.fixture
def tcp(proxy: Proxy) -> Iterator[Proxy]:
    """The module's proxy routing redis to v1 (canary callers to v2), with fresh records (once
    the connections of the test before have ended and been recorded)."""
    deadline = time.monotonic() + 5
    while proxy.tcp.active and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    proxy.apply(TO_V1)
    proxy.reset()
    yield proxy


def connect(proxy: Proxy, workload: str | None = None, host: str = "redis",
            port: int = 6379) -> socket.socket:  # fmt: skip
    return socket.create_connection(proxy.tcp_address(host, port, workload), timeout=5)


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def read_line(sock: socket.socket) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        out += chunk
    return out


def talk(proxy: Proxy, payload: bytes = b"", workload: str | None = None) -> bytes:
    """One whole conversation: send, half-close, read everything until the server closes."""
    with connect(proxy, workload) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def tcp_records(proxy: Proxy, n: int = 1, timeout: float = 5.0) -> list[Record]:
    """The TCP records, once ``n`` connections have ended (a record is written at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in proxy.records if r.is_tcp]
        if len(records) >= n or time.monotonic() > deadline:
            return records
        threading.Event().wait(0.01)


def test_bytes_go_both_ways_and_the_record_reads_like_envoys(tcp: Proxy, echoes) -> None:
    # The server's answer still arrives after the client's half-close (FIN passed on).
    assert talk(tcp, b"PING\r\n") == b"v1\nPING\r\n"
    (record,) = tcp_records(tcp)
    assert (record.protocol, record.status, record.flags, record.cluster) == ("TCP", 0, (), V1)
    assert (record.bytes_received, record.bytes_sent) == (6, 9)
    assert record.upstream_host == f"127.0.0.1:{echoes['v1'].port}"
    assert [a.outcome for a in record.attempts] == ["connected"]
    line = format_text(record)
    assert ' "- - -" 0 - - - "-" 6 9 ' in line
    assert f' "127.0.0.1:{echoes["v1"].port}" {V1} 127.0.0.1:' in line
    assert format_json(record).count('"protocol":"TCP"') == 1
    stats = tcp.stats
    assert stats[f"cluster.{V1}.upstream_cx_total"] == 1
    assert stats["tcp.downstream_cx_rx_bytes_total"] == 6


def test_source_labels_select_the_route_for_a_workload_listener(tcp: Proxy) -> None:
    assert talk(tcp, workload="canary") == b"v2\n"
    assert talk(tcp) == b"v1\n"
    assert [r.source for r in tcp_records(tcp, 2)] == ["canary", ""]


def test_weights_split_connections_and_replay_with_the_seed(tcp: Proxy) -> None:
    tcp.apply(HALF)

    def run() -> list[bytes]:
        tcp.reset(seed=11)
        return [talk(tcp) for _ in range(40)]

    first = run()
    counts = Counter(first)
    assert set(counts) == {b"v1\n", b"v2\n"} and 8 <= counts[b"v1\n"] <= 32
    assert run() == first


def test_latency_delays_what_the_client_receives(tcp: Proxy) -> None:
    tcp.apply(TO_V1, fault("host: redis\nlatency: {fixedDelay: 300ms}\n", "slow"))
    start = time.monotonic()
    with connect(tcp) as sock:
        assert read_line(sock) == b"v1\n"
        assert time.monotonic() - start >= 0.3
        start = time.monotonic()
        sock.sendall(b"x")
        assert sock.recv(1) == b"x"
        assert time.monotonic() - start >= 0.3
    (record,) = tcp_records(tcp)
    assert record.attempts[0].faults == ("UpstreamFault/default/slow:latency",)


def test_bandwidth_paces_the_bytes(tcp: Proxy) -> None:
    tcp.apply(TO_V1, fault("host: redis\nbandwidth: {bytesPerSecond: 20000}\n"))
    start = time.monotonic()
    assert len(talk(tcp, b"z" * 10_000)) == 10_003
    assert time.monotonic() - start >= 0.4  # 10 kB at 20 kB/s, less the first paced write


def test_limit_data_closes_cleanly_after_n_bytes(tcp: Proxy) -> None:
    tcp.apply(TO_V1, fault("host: redis\nlimitData: {bytes: 10}\n", "cut"))
    assert talk(tcp, b"0123456789" * 10) == b"v1\n0123456"
    (record,) = tcp_records(tcp)
    assert record.bytes_sent == 10
    assert "limitData closed the connection (UpstreamFault)" in record.notes


def test_reset_peer_resets_the_client(tcp: Proxy) -> None:
    tcp.apply(TO_V1, fault("host: redis\nresetPeer: {}\nfirstN: 1\n", "rst"))
    with pytest.raises(ConnectionResetError), connect(tcp) as sock:  # seen as it connects,
        read_all(sock)  # or at its first read
    assert talk(tcp, b"y") == b"v1\ny"  # firstN: 1 — the next connection is left alone
    records = tcp_records(tcp, 2)
    assert [r.attempts[0].faults for r in records] == [("UpstreamFault/default/rst:resetPeer",), ()]


def test_timeout_relays_nothing_then_closes(tcp: Proxy) -> None:
    tcp.apply(TO_V1, fault("host: redis\ntimeout: {after: 300ms}\n"))
    start = time.monotonic()
    with connect(tcp) as sock:
        sock.sendall(b"hello")
        assert read_all(sock) == b""  # no greeting, no echo: then a clean close
        assert time.monotonic() - start >= 0.3
    (record,) = tcp_records(tcp)
    assert (record.bytes_received, record.bytes_sent) == (5, 0)


def test_max_connections_closes_the_one_over_the_limit(tcp: Proxy) -> None:
    limit = textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: redis}
        spec:
          host: redis
          trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
          subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
        """)
    tcp.apply(TO_V1, limit)
    with connect(tcp) as held:
        assert read_line(held) == b"v1\n"
        with connect(tcp) as over:  # nothing sent: unread bytes would turn the close into a RST
            assert read_all(over) == b""
        (refused,) = tcp_records(tcp)
    assert refused.flags == ("UO",)
    assert tcp.stats[f"cluster.{V1}.upstream_cx_overflow"] == 1


def test_connect_failure_is_uf(tcp: Proxy) -> None:
    with connect(tcp, host="down", port=5432) as sock:
        assert read_all(sock) == b""
    (record,) = tcp_records(tcp)
    assert record.flags == ("UF",)
    assert [a.outcome for a in record.attempts] == ["connect-failure"]
    assert record.cluster == "outbound|5432||down.default.svc.cluster.local"


def test_a_listener_whose_service_is_gone_is_nr(tcp: Proxy) -> None:
    cache = textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: cache}
        spec:
          hosts: [cache]
          ports: [{number: 11211, name: tcp-memcache}]
          resolution: STATIC
          endpoints: [{address: 127.0.0.1}]
        """)
    tcp.apply(cache)
    address = tcp.tcp_address("cache", 11211)
    tcp.apply()
    with socket.create_connection(address, timeout=5) as sock:
        assert read_all(sock) == b""
    (record,) = tcp_records(tcp)
    assert record.flags == ("NR",)


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("rediss", 6379, "no service 'rediss' in the configuration .* did you mean \"redis\""),
        ("redis", 6380, r"redis has no port 6380 \(ports: 6379/TCP\)"),
    ],
)
def test_a_listener_needs_a_tcp_port_of_the_configuration(
    tcp: Proxy, host: str, port: int, message: str
) -> None:
    with pytest.raises(ProxyError, match=message):
        tcp.tcp_address(host, port)


def test_tcp_ports_are_checked_before_the_proxy_starts(echoes, tmp_path) -> None:
    with pytest.raises(ProxyError, match="is not \\[WORKLOAD@\\]HOST:PORT"):
        Proxy(mesh_yaml(echoes), state_dir=tmp_path, tcp_ports={"redis": 0})
    with pytest.raises(ProxyError, match="workload 'canry' is not declared"):
        Proxy(mesh_yaml(echoes), state_dir=tmp_path, tcp_ports={"canry@redis:6379": 0})


def test_a_subset_without_endpoints_is_uh(tcp: Proxy) -> None:
    empty = textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: redis}
        spec:
          host: redis
          subsets: [{name: v1, labels: {version: v1}}, {name: v9, labels: {version: v9}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: redis}
        spec:
          hosts: [redis]
          tcp: [{route: [{destination: {host: redis, subset: v9}}]}]
        """)
    tcp.apply(empty)  # valid: a subset that selects no endpoint is only a warning
    with connect(tcp) as sock:
        assert read_all(sock) == b""
    (record,) = tcp_records(tcp)
    assert (record.flags, record.cluster) == (("UH",), f"outbound|6379|v9|{REDIS}")
    assert tcp.stats[f"cluster.outbound|6379|v9|{REDIS}.upstream_cx_none_healthy"] == 1


def test_destination_rule_idle_timeout_closes_an_idle_connection(tcp: Proxy) -> None:
    idle = textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: redis}
        spec:
          host: redis
          trafficPolicy: {connectionPool: {tcp: {idleTimeout: 300ms}}}
          subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
        """)
    tcp.apply(TO_V1, idle)
    start = time.monotonic()
    with connect(tcp) as sock:
        assert read_all(sock) == b"v1\n"  # the greeting, then nothing: closed when idle
    assert time.monotonic() - start >= 0.3
    (record,) = tcp_records(tcp)
    assert "connectionPool.tcp.idleTimeout closed the idle connection" in record.notes
    assert tcp.stats["tcp.idle_timeout"] == 1


def loopy(port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: loopy}}
        spec:
          hosts: [loopy]
          ports: [{{number: 7000, name: tcp}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{tcp: {port}}}}}]
        """)


@pytest.mark.parametrize("own", ["tcp", "forward-proxy"])
def test_an_endpoint_that_is_the_proxy_itself_is_refused_not_looped(tcp: Proxy, own: str) -> None:
    tcp.apply(loopy(1))
    listener = tcp.tcp_address("loopy", 7000)
    tcp.apply(loopy(listener[1] if own == "tcp" else tcp.port))
    with socket.create_connection(listener, timeout=5) as sock:
        assert read_all(sock) == b""
    (record,) = tcp_records(tcp)
    assert [a.outcome for a in record.attempts] == ["loop"]
    assert tcp.stats["tcp.downstream_cx_loop"] == 1


def test_a_client_that_resets_mid_delay_ends_its_connection(tcp: Proxy, echoes) -> None:
    tcp.apply(TO_V1, fault("host: redis\nlatency: {fixedDelay: 2s, stream: upstream}\n"))
    before = echoes["v1"].received
    sock = connect(tcp)
    assert read_line(sock) == b"v1\n"
    sock.sendall(b"lost")
    threading.Event().wait(0.2)  # the proxy has read them: they wait in the delay
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    start = time.monotonic()
    sock.close()  # a RST
    (record,) = tcp_records(tcp)
    assert time.monotonic() - start < 1.5  # ended at the reset, not after the 2 s delay
    assert (record.bytes_received, record.bytes_sent) == (4, 3)
    assert [a.outcome for a in record.attempts] == ["connected"]
    assert tcp.tcp.active == 0
    assert echoes["v1"].received == before  # the delayed bytes never reached the upstream
    tcp.apply(TO_V1)
    assert talk(tcp, b"next") == b"v1\nnext"  # and the proxy carries on
