"""A ``grpcio`` client through the ``chaos`` fixture of this very test run: a gRPC abort from
``chaos.route_fault`` reaches the client as its status, and ``chaos.records`` has the call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chaoskit_pytest.handle import Chaos

from tests.integration.test_grpc import Echo, mesh

grpc = pytest.importorskip("grpc")


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo()
    server.server.start()
    yield server
    server.server.stop(0)


def test_a_grpc_abort_reaches_the_client_and_the_record(chaos: Chaos, echo: Echo):
    chaos.apply(mesh(echo.port))
    options = [("grpc.http_proxy", chaos.url), ("grpc.enable_http_proxy", 1)]
    with grpc.insecure_channel("greeter:50051", options=options) as channel:
        say = channel.unary_unary("/demo.Echo/Say")
        assert say(b"hi", timeout=10) == b"echo:hi"
        chaos.route_fault("greeter", abort="RESOURCE_EXHAUSTED")
        with pytest.raises(grpc.RpcError) as failed:
            say(b"hi", timeout=10)
    assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ok, aborted = chaos.records.where(host="greeter")
    assert (ok.protocol, ok.status, ok.flags) == ("HTTP/2", 200, ())
    assert aborted.flags == ("FI",)


def test_a_server_stream_cut_after_one_message_through_chaos_fault(chaos: Chaos, echo: Echo):
    chaos.apply(mesh(echo.port))
    chaos.fault("greeter", reset={"afterEvents": 1}, first=1)
    options = [("grpc.http_proxy", chaos.url), ("grpc.enable_http_proxy", 1)]
    got = []
    with grpc.insecure_channel("greeter:50051", options=options) as channel:
        stream = channel.unary_stream("/demo.Echo/Stream")
        with pytest.raises(grpc.RpcError):
            for message in stream(b"3", timeout=10):
                got.append(message)
        assert list(stream(b"2", timeout=10)) == [b"msg0", b"msg1"]  # firstN: 1 is spent
    assert got == [b"msg0"]
    cut, whole = chaos.records.where(host="greeter")
    assert (cut.status, cut.flags, whole.flags) == (200, ("UC",), ())
