"""UpstreamFault body actions on a gRPC server stream with real grpcio (issue #14 items 2 and 5):
``afterEvents`` counts gRPC messages, so a stream can stall or die after exactly N of them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

grpc = pytest.importorskip("grpc")

from chaoskit.proxy.api import Proxy  # noqa: E402
from tests.builders import fault  # noqa: E402
from tests.integration.test_grpc import Echo, mesh  # noqa: E402


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    server = Echo()
    server.server.start()
    yield server
    server.server.stop(0)


@pytest.fixture(scope="module")
def proxy(echo: Echo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(mesh(echo.port), seed=5, state_dir=state) as p:
        yield p


@pytest.fixture
def stream(proxy: Proxy) -> Iterator[object]:
    proxy.apply()
    proxy.reset()
    options = [("grpc.http_proxy", proxy.url), ("grpc.enable_http_proxy", 1)]
    with grpc.insecure_channel("greeter:50051", options=options) as ch:
        yield ch.unary_stream("/demo.Echo/Stream")


def test_a_reset_after_two_messages_ends_the_call_after_exactly_two(proxy, stream):
    proxy.apply(fault("host: greeter\nreset: {afterEvents: 2}\n"))
    got = []
    with pytest.raises(grpc.RpcError) as failed:
        for message in stream(b"5", timeout=10):
            got.append(message)
    assert got == [b"msg0", b"msg1"]
    assert failed.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE)
    record = proxy.records[-1]
    assert (record.protocol, record.status, record.flags) == ("HTTP/2", 200, ("UC",))
    assert [a.outcome for a in record.attempts] == ["reset-after-headers"]
    assert any("UpstreamFault reset after 2 events" in n for n in record.notes), record.notes


def test_a_pause_after_the_first_message_delays_the_rest(proxy, stream):
    proxy.apply(fault("host: greeter\npauseBody: {afterEvents: 1, for: 600ms}\n"))
    t0 = time.monotonic()
    arrived = [(time.monotonic() - t0, m) for m in stream(b"3", timeout=10)]
    assert [m for _, m in arrived] == [b"msg0", b"msg1", b"msg2"]  # the call still succeeds
    assert arrived[1][0] - arrived[0][0] >= 0.55
    record = proxy.records[-1]
    assert record.flags == ()
    assert any("paused the body for 0.6s after 1 gRPC message" in n for n in record.notes)
