"""The tunnel scope, through mitmproxy's own test harness: no sockets."""

from __future__ import annotations

from chaoskit.proxy import core


def test_mitmproxy_may_open_upstream_connections_only_for_passed_through_tunnels():
    # The second line of defence: should an HTTP request ever escape the core, mitmproxy's own
    # attempt to forward it is refused at `server_connect` instead of dialled.
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData
    from mitmproxy.test import tflow

    addon = core.ChaosCore().tunnels
    flow = tflow.tflow()
    escaped = ServerConnectionHookData(server=flow.server_conn, client=flow.client_conn)
    addon.server_connect(escaped)
    assert escaped.server.error and "refused" in escaped.server.error

    tunnel = tflow.tflow()
    addon.passed_through.add(tunnel.client_conn.id)  # what tls_clienthello/tcp_start mark
    data = ServerConnectionHookData(server=tunnel.server_conn, client=tunnel.client_conn)
    addon.server_connect(data)
    assert data.server.error is None


def test_a_handed_over_websocket_handshake_may_connect_once_to_its_endpoint_only():
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData
    from mitmproxy.test import tflow

    addon = core.ChaosCore().tunnels
    flow = tflow.tflow()
    addon.allow_upgrade(flow.client_conn.id, ("127.0.0.1", 9081))

    def connect(address: tuple[str, int]) -> str | None:
        server = tflow.tserver_conn()
        server.address = address
        data = ServerConnectionHookData(server=server, client=flow.client_conn)
        addon.server_connect(data)
        return data.server.error

    assert connect(("127.0.0.1", 9999)) is not None  # not the endpoint chaoskit chose
    assert connect(("127.0.0.1", 9081)) is None
    assert connect(("127.0.0.1", 9081)) is not None  # once
