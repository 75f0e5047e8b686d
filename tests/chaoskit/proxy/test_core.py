"""Pieces of the core addon that need no running proxy."""

from __future__ import annotations

import pytest
from mitmproxy import http

from chaoskit.proxy import core


@pytest.mark.parametrize(
    ("status", "reason", "headers", "body"),
    [
        (200, b"OK", [(b"content-length", b"2")], b"hi"),
        (503, b"Service Unavailable", [(b"x-envoy-overloaded", b"true"), (b"a", b"1")], b""),
        (599, b"", [], b"\x00\xff" * 100),
    ],
)
def test_the_unchecked_response_is_what_mitmproxy_builds(
    status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    fast = core._unchecked_response(status, reason, http.Headers(headers), body, 12.5)
    slow = http.Response(b"HTTP/1.1", status, reason, http.Headers(headers), body, None, 12.5, 12.5)
    assert fast.get_state() == slow.get_state()
    assert (fast.status_code, fast.reason, fast.raw_content, fast.headers.fields) == (
        slow.status_code, slow.reason, slow.raw_content, slow.headers.fields,
    )  # fmt: skip


def test_the_pinned_mitmproxy_gets_the_unchecked_factory() -> None:
    # If this fails after a mitmproxy upgrade, the core still works (checked constructor),
    # but ~3 % slower: look at what changed in http.Response.
    assert core._new_response is core._unchecked_response


def test_skipping_mitmproxy_debug_typechecks_is_process_wide_and_only_when_asked() -> None:
    # In a child process: the switch is process-wide by design (``chaoskit proxy`` only).
    import subprocess
    import sys

    code = """
from mitmproxy import http
from chaoskit.proxy.runtime import skip_debug_typechecks
def bad():
    return http.Response(b"HTTP/1.1", "200", b"OK", http.Headers(), b"", None, 1.0, 1.0)
try:
    bad()
except TypeError:
    print("checked")
assert skip_debug_typechecks()
bad()
print("unchecked")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["checked", "unchecked"]


# -- fail closed: every path ends in chaoskit's reply or a killed flow ---------------------------

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
        target = {"as_grpc": core.replies, "_to_response": core.ChaosCore}.get(name, core)
        monkeypatch.setattr(target, name, boom)
    pipeline = Pipeline(Seeds(1), UpstreamClient())
    pipeline.set_mesh(validated(DIRECT).mesh)
    addon = core.ChaosCore(pipeline)
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
    flow = _flow_through_core(monkeypatch, "_to_response")
    assert flow.response is not None and flow.response.status_code == 500
    assert flow.response.content == b"chaoskit internal error"
    assert flow.error is None
    (record,) = flow.metadata["chaoskit"]["notes"][-1:]  # and the request still has its record
    assert "reply: RuntimeError" in record


def test_when_nothing_can_be_sent_the_flow_is_killed_never_forwarded(
    monkeypatch: pytest.MonkeyPatch,
):
    flow = _flow_through_core(monkeypatch, "_to_response", "_new_response")
    assert flow.response is None
    assert flow.error is not None  # killed: mitmproxy closes the connection, forwards nothing
    assert "no reply could be sent" in flow.metadata["chaoskit"]["notes"][-1]


def test_mitmproxy_may_open_upstream_connections_only_for_passed_through_tunnels():
    # The second line of defence: should an HTTP request ever escape the core, mitmproxy's own
    # attempt to forward it is refused at `server_connect` instead of dialled.
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData
    from mitmproxy.test import tflow

    addon = core.ChaosCore()
    flow = tflow.tflow()
    escaped = ServerConnectionHookData(server=flow.server_conn, client=flow.client_conn)
    addon.server_connect(escaped)
    assert escaped.server.error and "refused" in escaped.server.error

    tunnel = tflow.tflow()
    addon._tunnel_clients.add(tunnel.client_conn.id)  # what tls_clienthello/tcp_start mark
    data = ServerConnectionHookData(server=tunnel.server_conn, client=tunnel.client_conn)
    addon.server_connect(data)
    assert data.server.error is None
