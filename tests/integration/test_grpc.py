"""gRPC through the mesh with a real ``grpcio`` client and server: the client reaches chaoskit
through its HTTP proxy setting (``grpc.http_proxy``: a ``CONNECT`` tunnel carrying HTTP/2 with
prior knowledge), chaoskit routes each call and sends it to the endpoint over HTTP/2, trailers
and all (issue #14 items 4-5)."""

from __future__ import annotations

import contextlib
import re
import shutil
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import pytest

grpc = pytest.importorskip("grpc")

from chaoskit.proxy.api import Proxy  # noqa: E402
from chaoskit.records import Record  # noqa: E402
from chaoskit.testing import Http2Upstream  # noqa: E402
from tests.builders import fault  # noqa: E402
from tests.reliability.conftest import buffered, wait_for  # noqa: E402


class Echo:
    """A grpcio server with raw-bytes methods (no generated code): ``Say`` echoes,
    ``Stream`` answers three messages 100 ms apart (``count`` of them, slowly, when asked),
    ``Flaky`` answers UNAVAILABLE to its first ``fail_first`` calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()
        handler = grpc.method_handlers_generic_handler(
            "demo.Echo",
            {
                "Say": grpc.unary_unary_rpc_method_handler(self.say),
                "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
                "Flaky": grpc.unary_unary_rpc_method_handler(self.flaky),
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(8))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def say(self, request: bytes, context: object) -> bytes:
        return b"echo:" + request

    def stream(self, request: bytes, context: object) -> Iterator[bytes]:
        count = int(request or b"3")
        for i in range(count):
            yield b"msg%d" % i
            threading.Event().wait(0.1)

    def flaky(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.fail_first
        if failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        return b"ok"


def mesh(port: int, extra: str = "") -> str:
    return (
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: greeter}}
        spec:
          hosts: [greeter]
          ports: [{{number: 50051, name: grpc, protocol: GRPC}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{grpc: {port}}}}}]
        """)
        + extra
    )


def route(spec: str) -> str:
    return "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n" + (
        "metadata: {name: greeter}\nspec:\n  hosts: [greeter]\n  http:\n  - route: "
        "[{destination: {host: greeter}}]\n" + textwrap.indent(textwrap.dedent(spec), "    ")
    )


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    server = Echo(fail_first=0)
    server.server.start()
    yield server
    server.server.stop(0)


@pytest.fixture(scope="module")
def proxy(echo: Echo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(mesh(echo.port), seed=5, state_dir=state) as p:
        yield p


@pytest.fixture
def channel(proxy: Proxy) -> Iterator[grpc.Channel]:
    proxy.apply()
    proxy.reset()
    options = [("grpc.http_proxy", proxy.url), ("grpc.enable_http_proxy", 1)]
    with grpc.insecure_channel("greeter:50051", options=options) as ch:
        yield ch


def test_unary_and_server_streaming_calls_go_through_the_mesh(proxy, channel):
    assert channel.unary_unary("/demo.Echo/Say")(b"hi", timeout=10) == b"echo:hi"
    t0 = time.monotonic()
    arrived = []
    for message in channel.unary_stream("/demo.Echo/Stream")(b"3", timeout=10):
        arrived.append((time.monotonic() - t0, message))
    assert [m for _, m in arrived] == [b"msg0", b"msg1", b"msg2"]
    assert arrived[-1][0] - arrived[0][0] >= 0.15  # streamed as sent, not at the end
    say, stream = proxy.records
    assert (say.protocol, say.method, say.path, say.status, say.flags) == (
        "HTTP/2", "POST", "/demo.Echo/Say", 200, (),
    )  # fmt: skip
    assert say.cluster == "outbound|50051||greeter.default.svc.cluster.local"
    assert stream.path == "/demo.Echo/Stream" and stream.flags == ()


def test_a_grpc_status_abort_reaches_the_client(proxy, channel):
    proxy.apply(
        mesh(0)[:0] + route("fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n")
    )
    with pytest.raises(grpc.RpcError) as failed:
        channel.unary_unary("/demo.Echo/Say")(b"hi", timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    record = proxy.records[-1]
    assert record.flags == ("FI",) and record.attempts == ()


def test_retry_on_unavailable_recovers(proxy, channel):
    flaky = Echo(fail_first=2)
    flaky.server.start()
    try:
        se = mesh(flaky.port).replace("greeter", "flaky")
        vs = route("retries: {attempts: 3, retryOn: unavailable}\n").replace("greeter", "flaky")
        proxy.apply(se + vs)
        options = [("grpc.http_proxy", proxy.url), ("grpc.enable_http_proxy", 1)]
        with grpc.insecure_channel("flaky:50051", options=options) as ch:
            assert ch.unary_unary("/demo.Echo/Flaky")(b"", timeout=10) == b"ok"
    finally:
        flaky.server.stop(0)
    record = proxy.records[-1]
    assert [a.status for a in record.attempts] == [200, 200, 200] and flaky.calls == 3
    assert record.status == 200 and record.flags == ()


def test_an_upstream_fault_delay_fires_on_a_call(proxy, channel):
    proxy.apply(fault("host: greeter\ndelay: {fixedDelay: 300ms}\n"))
    t0 = time.monotonic()
    assert channel.unary_unary("/demo.Echo/Say")(b"x", timeout=10) == b"echo:x"
    assert time.monotonic() - t0 >= 0.3
    assert proxy.records[-1].attempts[0].faults == ("UpstreamFault/default/f:delay",)


def test_a_stream_cut_by_the_route_timeout_is_reset_and_not_retried(proxy, channel):
    proxy.apply(route("timeout: 500ms\nretries: {attempts: 2, retryOn: 'unavailable,reset'}\n"))
    got = []
    with pytest.raises(grpc.RpcError):
        for message in channel.unary_stream("/demo.Echo/Stream")(b"20", timeout=10):
            got.append(message)
    assert 2 <= len(got) < 20
    record = proxy.records[-1]
    assert "UT" in record.flags and len(record.attempts) == 1


# -- UpstreamFault body actions on a server stream: afterEvents counts gRPC messages (item 2) --


def test_a_reset_after_two_messages_ends_the_call_after_exactly_two(proxy, channel):
    proxy.apply(fault("host: greeter\nreset: {afterEvents: 2}\n"))
    got = []
    with pytest.raises(grpc.RpcError) as failed:
        for message in channel.unary_stream("/demo.Echo/Stream")(b"5", timeout=10):
            got.append(message)
    assert got == [b"msg0", b"msg1"]
    assert failed.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE)
    record = proxy.records[-1]
    assert (record.protocol, record.status, record.flags) == ("HTTP/2", 200, ("UC",))
    assert [a.outcome for a in record.attempts] == ["reset-after-headers"]
    assert any("UpstreamFault reset after 2 events" in n for n in record.notes), record.notes


def test_a_pause_after_the_first_message_delays_the_rest(proxy, channel):
    proxy.apply(fault("host: greeter\npauseBody: {afterEvents: 1, for: 600ms}\n"))
    t0 = time.monotonic()
    arrived = [
        (time.monotonic() - t0, m)
        for m in channel.unary_stream("/demo.Echo/Stream")(b"3", timeout=10)
    ]
    assert [m for _, m in arrived] == [b"msg0", b"msg1", b"msg2"]  # the call still succeeds
    assert arrived[1][0] - arrived[0][0] >= 0.55
    record = proxy.records[-1]
    assert record.flags == ()
    assert any("paused the body for 0.6s after 1 gRPC message" in n for n in record.notes)


# -- HTTP/2 to endpoints for any client, and HTTP/2 with prior knowledge from clients ----------


def web_mesh(port: int, protocol: str, extra: str = "") -> str:
    return (
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: web2}}
        spec:
          hosts: [web2]
          ports: [{{number: 80, name: web, protocol: {protocol}}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{web: {port}}}}}]
        """)
        + extra
    )


UPGRADE = """\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web2}
spec:
  host: web2
  trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}
"""


@pytest.mark.parametrize(
    ("protocol", "extra"), [("HTTP2", ""), ("HTTP", UPGRADE)], ids=["http2-port", "h2-upgrade"]
)
def test_an_http11_client_reaches_an_http2_endpoint(proxy, protocol, extra):
    import requests

    from chaoskit.testing import Http2Upstream

    with Http2Upstream("h2") as up:
        proxy.apply(web_mesh(up.port, protocol, extra))
        with requests.Session() as s:
            s.trust_env = False
            r = s.get("http://web2/chunks/3/100", proxies={"http": proxy.url}, timeout=10)
        assert r.status_code == 200 and r.text == "chunk 0\nchunk 1\nchunk 2\n"
        sent = up.requests[-1]
        assert (sent.method, sent.path, sent.headers["x-envoy-attempt-count"]) == (
            "GET", "/chunks/3/100", "1",
        )  # fmt: skip
    record = proxy.records[-1]
    assert (record.protocol, record.status, record.flags) == ("HTTP/1.1", 200, ())


def test_an_http1_endpoint_stays_http1(proxy):
    import requests

    from chaoskit.testing import Http2Upstream

    with Http2Upstream("h2") as up:  # an HTTP/2-only server behind an HTTP port
        proxy.apply(web_mesh(up.port, "HTTP"))
        with requests.Session() as s:
            s.trust_env = False
            r = s.get("http://web2/", proxies={"http": proxy.url}, timeout=10)
    assert r.status_code == 503  # chaoskit spoke HTTP/1.1, as Istio's DO_NOT_UPGRADE default


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_curl_with_prior_knowledge_through_a_tunnel(proxy, echo):
    import subprocess

    from chaoskit.testing import Upstream

    with Upstream("web") as up:
        proxy.apply(web_mesh(up.port, "HTTP"))
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
             "--http2-prior-knowledge", "-p", "-x", proxy.url, "http://web2/x"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
    assert out == "200 2"
    record = proxy.records[-1]
    assert (record.protocol, record.status, record.path) == ("HTTP/2", 200, "/x")


# -- grpc-timeout: the call's own deadline, up to the route timeout (issue #14 item 5) ---------

NO_ROUTE_TIMEOUT = """\
---
apiVersion: chaoskit.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec: {timeout: 0s}
"""


@pytest.fixture(scope="module")
def slow() -> Iterator[Http2Upstream]:
    """An HTTP/2 gRPC endpoint that ignores deadlines (``/grpc/0/<ms>`` answers after ``ms``)
    and keeps the headers each request came with."""
    with Http2Upstream("slow") as up:
        yield up


def slow_mesh(port: int, spec: str) -> str:
    return (mesh(port) + (route(spec) if spec else "")).replace("greeter", "slow")


def slow_channel(proxy: Proxy) -> grpc.Channel:
    options = [("grpc.http_proxy", proxy.url), ("grpc.enable_http_proxy", 1)]
    return grpc.insecure_channel("slow:50051", options=options)


def timeout_ms(value: str) -> float:
    from chaoskit.routing.grpc_timeout import parse_ms

    ms = parse_ms(value)
    assert ms is not None, value
    return ms


def test_the_route_timeout_caps_a_longer_grpc_timeout(proxy, slow):
    proxy.apply(slow_mesh(slow.port, "timeout: 200ms\n"))
    proxy.reset()
    slow.requests.clear()
    t0 = time.monotonic()
    with slow_channel(proxy) as ch, pytest.raises(grpc.RpcError) as failed:
        ch.unary_unary("/grpc/0/2000")(b"hi", timeout=5)
    took = time.monotonic() - t0
    # Envoy's local reply for a gRPC call: 200 with grpc-status 14 (504 → UNAVAILABLE)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failed.value.details() == "upstream request timeout"
    assert 0.2 <= took < 1.5
    # the endpoint was told the deadline the mesh enforces, not the client's 5 s
    assert 150 <= timeout_ms(slow.requests[-1].headers["grpc-timeout"]) <= 200
    record = proxy.records[-1]
    assert record.flags == ("UT",)
    assert "grpc-timeout 5S capped by the route timeout of 0.2s" in record.notes


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "buffered"])
def test_an_answer_relayed_whole_keeps_its_trailers(proxy, slow, streaming):
    """A unary answer that arrived whole with its head (streaming on) and any answer with
    streaming off are relayed whole: their trailers still carry ``grpc-status`` to the client."""
    proxy.apply(slow_mesh(slow.port, ""))
    with contextlib.ExitStack() as stack:
        if not streaming:
            stack.enter_context(buffered(proxy))
        ch = stack.enter_context(slow_channel(proxy))
        assert ch.unary_unary("/grpc/0")(b"hi", timeout=5) == b"hi"
        with pytest.raises(grpc.RpcError) as failed:
            ch.unary_unary("/grpc/5")(b"hi", timeout=5)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_call_without_a_deadline_is_told_the_route_timeout(proxy, slow):
    proxy.apply(slow_mesh(slow.port, "timeout: 10s\n"))
    slow.requests.clear()
    with slow_channel(proxy) as ch:
        assert ch.unary_unary("/grpc/0")(b"hi") == b"hi"
    assert slow.requests[-1].headers["grpc-timeout"] == "10000m"  # as Envoy adds it


def test_each_attempt_is_told_what_is_left(proxy, slow):
    """Envoy rewrites ``grpc-timeout`` per attempt: the per-try timeout while it is the shorter,
    then what the route timeout has left."""
    retry = "retries: {attempts: 2, perTryTimeout: 600ms, retryOn: reset}\n"
    proxy.apply(slow_mesh(slow.port, "timeout: 1s\n" + retry))
    proxy.reset()
    slow.requests.clear()
    with slow_channel(proxy) as ch, pytest.raises(grpc.RpcError) as failed:
        ch.unary_unary("/grpc/0/2000")(b"hi", timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    first, second = (timeout_ms(r.headers["grpc-timeout"]) for r in slow.requests)
    assert first == 600  # the per-try timeout, shorter than the route's 1 s
    assert 0 < second <= 400  # sent after 600 ms and a back-off: what the route has left
    record = proxy.records[-1]
    assert [a.outcome for a in record.attempts] == ["per-try-timeout", "route-timeout"]
    assert record.flags == ("UT",)


@pytest.mark.parametrize("spec", ["", "timeout: 10s\n"], ids=["no-route-timeout", "10s"])
def test_a_grpcio_call_ends_at_its_own_deadline(proxy, slow, spec):
    proxy.apply(slow_mesh(slow.port, spec) + (NO_ROUTE_TIMEOUT if not spec else ""))
    proxy.reset()
    slow.requests.clear()
    t0 = time.monotonic()
    with slow_channel(proxy) as ch, pytest.raises(grpc.RpcError) as failed:
        ch.unary_unary("/grpc/0/2000")(b"hi", timeout=0.3)
    took = time.monotonic() - t0
    # grpcio's own deadline and the mesh's fire together: either status may reach the client
    assert failed.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)
    assert 0.25 <= took < 1.5
    assert timeout_ms(slow.requests[-1].headers["grpc-timeout"]) <= 300
    record = wait_for_record(proxy)
    # the mesh's timer fires a few ms after grpcio's, whose cancel chaoskit sees within 50 ms:
    # mostly UT, DC when the machine is slow (the 504 as gRPC itself: the curl test below)
    assert record.flags in (("UT",), ("DC",)) and record.duration < 1.5
    (note,) = [n for n in record.notes if n.startswith("grpc-timeout ")]  # grpcio: "298m"
    told = re.fullmatch(r"grpc-timeout (\S+) set the timeout to ([0-9.]+)s \(.*\)", note)
    assert told is not None and timeout_ms(told[1]) / 1000 == float(told[2]), note
    assert 0.2 < float(told[2]) <= 0.3


def wait_for_record(proxy: Proxy) -> Record:
    """The record of the last request: written just after the client's own deadline fired."""
    assert wait_for(lambda: proxy.records), "no record"
    return proxy.records[-1]


def curl_grpc(proxy: Proxy, url: str, tmp_path, grpc_timeout: str) -> tuple[list[str], float]:
    """curl's gRPC call through the proxy (HTTP/2 with prior knowledge in a CONNECT tunnel),
    sending ``grpc-timeout`` without enforcing it: our answer's head lines, and the time."""
    import subprocess

    from chaoskit.testing.http2_upstream import grpc_message

    body = tmp_path / "body"
    body.write_bytes(grpc_message(b"hi"))
    out = subprocess.run(
        ["curl", "-s", "-D", "-", "-o", "/dev/null", "-w", "%{time_total}",
         "--http2-prior-knowledge", "-p", "-x", proxy.url, url,
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         "-H", f"grpc-timeout: {grpc_timeout}", "--data-binary", f"@{body}"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    head, _, took = out.rpartition("\n")
    lines = [x.strip() for x in head.lower().splitlines()]  # the CONNECT's answer, then ours
    return lines[lines.index("http/2 200") :], float(took)


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
@pytest.mark.parametrize("spec", ["", "timeout: 10s\n"], ids=["no-route-timeout", "10s"])
def test_the_mesh_answers_a_call_past_its_grpc_timeout(proxy, slow, spec, tmp_path):
    """A client that sends ``grpc-timeout`` without enforcing it (curl) gets Envoy's answer:
    the 504 local reply as gRPC, HTTP 200 with ``grpc-status: 14``, once the header's 300 ms
    are over."""
    proxy.apply(slow_mesh(slow.port, spec) + (NO_ROUTE_TIMEOUT if not spec else ""))
    proxy.reset()
    reply, took = curl_grpc(proxy, "http://slow:50051/grpc/0/2000", tmp_path, "300m")
    assert "grpc-status: 14" in reply and "grpc-message: upstream request timeout" in reply
    assert 0.3 <= took < 1.5
    record = wait_for_record(proxy)
    assert record.flags == ("UT",) and record.attempts[0].outcome == "route-timeout"
    assert record.notes[0].startswith("grpc-timeout 300m set the timeout to 0.3s")


# -- ALLOW_ANY: a host outside the registry, through Istio's PassthroughCluster -----------------


def test_a_call_to_a_host_outside_the_registry_passes_through_over_http2(proxy, slow):
    """The PassthroughCluster speaks the client's protocol (Istio: USE_DOWNSTREAM_PROTOCOL):
    a gRPC server outside the registry is reached over HTTP/2 and told the call's deadline."""
    proxy.apply()
    proxy.reset()
    slow.requests.clear()
    options = [("grpc.http_proxy", proxy.url), ("grpc.enable_http_proxy", 1)]
    with grpc.insecure_channel(f"127.0.0.1:{slow.port}", options=options) as ch:
        assert ch.unary_unary("/grpc/0")(b"hi", timeout=5) == b"hi"
    record = wait_for_record(proxy)
    assert record.cluster == "PassthroughCluster" and record.protocol == "HTTP/2"
    assert [a.outcome for a in record.attempts] == ["response"]
    assert 4900 <= timeout_ms(slow.requests[-1].headers["grpc-timeout"]) <= 5000


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_a_passthrough_call_ends_at_its_grpc_timeout(proxy, slow, tmp_path):
    """Istio's catch-all route has no timeout but honours ``grpc-timeout`` uncapped: the call
    gets the 504 local reply as gRPC when its own deadline is over, never hangs on."""
    proxy.apply()
    proxy.reset()
    reply, took = curl_grpc(proxy, f"http://127.0.0.1:{slow.port}/grpc/0/2000", tmp_path, "300m")
    assert "grpc-status: 14" in reply and "grpc-message: upstream request timeout" in reply
    assert 0.3 <= took < 1.5
    record = wait_for_record(proxy)
    assert record.cluster == "PassthroughCluster" and record.flags == ("UT",)
    assert record.attempts[0].outcome == "route-timeout"
    assert record.notes == (
        "grpc-timeout 300m set the timeout to 0.3s (the route has none)",
        "grpc-timeout 0.3s expired",
    )


@pytest.mark.parametrize(
    ("action", "answered"),
    [("slowBody: {bytesPerSecond: 1000}", True), ("pauseBody: {afterEvents: 1, for: 200ms}", True),
     ("truncateBody: {afterBytes: 3}", False)],
    ids=["slowBody", "pauseBody", "truncateBody"],
)  # fmt: skip
def test_a_whole_answer_keeps_its_status_only_when_its_body_ends(proxy, slow, action, answered):
    """An answer that arrived whole with its head (``slow`` writes headers, message and
    trailers at once) hands its trailers (``grpc-status``) on only when the body action lets
    it reach its end; a body cut short has none, and the call fails (as a streamed one)."""
    proxy.apply(slow_mesh(slow.port, "") + "---\n" + fault(f"host: slow\n{action}\n"))
    proxy.reset()
    with slow_channel(proxy) as ch:
        if answered:
            assert ch.unary_unary("/grpc/0")(b"hi", timeout=10) == b"hi"
        else:
            with pytest.raises(grpc.RpcError) as failed:
                ch.unary_unary("/grpc/0")(b"hi", timeout=10)
            assert failed.value.code() != grpc.StatusCode.OK
    record = wait_for_record(proxy)
    name = action.partition(":")[0]
    assert record.attempts[0].faults == (f"UpstreamFault/default/f:{name}",)
