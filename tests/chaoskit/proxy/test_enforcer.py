"""The enforcer fails closed: every path ends in chaoskit's reply or a killed flow, run through
mitmproxy's own test harness (``taddons``/``tflow``), no sockets."""

from __future__ import annotations

import pytest
from mitmproxy import http

from chaoskit.proxy import core, replies, responses

DIRECT = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - directResponse: {status: 503, body: {string: "busy"}}
"""


def _flow_through_core(monkeypatch: pytest.MonkeyPatch, *breakages: str) -> http.HTTPFlow:
    """Run one gRPC request for ``web`` through a ChaosCore whose reply-building steps named in
    ``breakages`` raise, the way a bug in them would."""
    import asyncio

    from mitmproxy.test import taddons, tflow

    from chaoskit.proxy.pipeline import Pipeline
    from chaoskit.proxy.upstream import UpstreamClient
    from chaoskit.rng import Seeds
    from chaoskit.sources import validated

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    for name in breakages:
        target = replies if name == "as_grpc" else responses
        monkeypatch.setattr(target, name, boom)
    pipeline = Pipeline(Seeds(1), UpstreamClient())
    pipeline.set_mesh(validated(DIRECT).mesh)
    addon = core.ChaosCore(pipeline).enforcer
    flow = tflow.tflow()
    flow.request.host, flow.request.port = "web", 80
    flow.request.headers["host"] = "web"
    flow.request.headers["content-type"] = "application/grpc"

    async def run() -> None:  # inside a running loop: taddons would otherwise make its own
        with taddons.context(addon):
            await addon.request(flow)

    asyncio.run(run())
    return flow


def test_a_reply_that_cannot_be_built_becomes_chaoskits_500(monkeypatch: pytest.MonkeyPatch):
    flow = _flow_through_core(monkeypatch, "as_grpc")
    assert flow.response is not None and flow.response.status_code == 500
    assert flow.response.headers["x-chaoskit-error"] == "core-error"
    (record,) = flow.metadata["chaoskit"]["notes"][-1:]
    assert "reply: RuntimeError" in record


def test_when_even_the_500_cannot_be_built_a_fixed_one_is_sent(monkeypatch: pytest.MonkeyPatch):
    flow = _flow_through_core(monkeypatch, "to_response")
    assert flow.response is not None and flow.response.status_code == 500
    assert flow.response.content == b"chaoskit internal error"
    assert flow.error is None
    (record,) = flow.metadata["chaoskit"]["notes"][-1:]  # and the request still has its record
    assert "reply: RuntimeError" in record


def test_when_nothing_can_be_sent_the_flow_is_killed_never_forwarded(
    monkeypatch: pytest.MonkeyPatch,
):
    flow = _flow_through_core(monkeypatch, "to_response", "_new_response")
    assert flow.response is None
    assert flow.error is not None  # killed: mitmproxy closes the connection, forwards nothing
    assert "no reply could be sent" in flow.metadata["chaoskit"]["notes"][-1]
