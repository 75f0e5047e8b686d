"""This proxy's own listening sockets, as mitmproxy runs them: which one a flow arrived on
(the :class:`~chaoskit.routing.router.Listener` it is routed for), and every address they
listen on (what :class:`~chaoskit.proxy.loops.LoopGuard` refuses as a destination).
"""

from __future__ import annotations

from typing import Any

from mitmproxy import ctx, http
from mitmproxy.proxy import mode_specs

from chaoskit.proxy import webui
from chaoskit.proxy.loops import ListenerKind
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.routing.router import Listener

_MESH = Listener.mesh()


class ListenerTable:
    def __init__(self) -> None:
        #: bound port of a gateway listener → the Gateway server port it serves (from the YAML)
        self.gateway_ports: dict[int, int] = {}
        #: bound port of a workload's own forward-proxy listener → the workload's name
        self.workload_ports: dict[int, str] = {}
        self._gateways: dict[int, Listener] = {}
        self._key: object = None
        self._addresses: dict[tuple[str, int], ListenerKind] = {}

    def listener_of(self, flow: http.HTTPFlow) -> Listener:
        """The listener a flow arrived on: the forward proxy (the mesh), or the Gateway port a
        reverse-proxy listener serves."""
        if isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode):
            sockname = flow.client_conn.sockname
            port = sockname[1] if sockname else 0
            port = self.gateway_ports.get(port, port)
            listener = self._gateways.get(port)
            if listener is None:
                listener = self._gateways[port] = Listener.gateway(port)
            return listener
        return _MESH

    def workload_of(self, flow: http.HTTPFlow) -> str:
        """The workload whose own listener the flow arrived on (``""``: the shared one, where
        the caller names itself in its proxy URL)."""
        ports = self.workload_ports
        if not ports:
            return ""
        sockname = flow.client_conn.sockname
        return ports.get(sockname[1], "") if sockname else ""

    def own_listeners(self) -> dict[tuple[str, int], ListenerKind]:
        """Every address this proxy listens on and what it serves. Only a Gateway listener is
        ever a destination (:data:`chaoskit.proxy.loops.HOP_KINDS`).

        Asked on every forwarded request; the answer is kept until the set of listeners
        changes (reading the bound addresses is a system call per socket)."""
        try:
            servers = list(ctx.master.addons.get("proxyserver").servers)
        except Exception:  # no master (unit tests) or not started yet
            return {}
        key = (
            tuple((id(server), server.is_running) for server in servers),
            len(self.gateway_ports),
        )
        if key == self._key:
            return self._addresses
        out: dict[tuple[str, int], ListenerKind] = {}
        for server in servers:
            try:
                addresses = server.listen_addrs
            except Exception:
                continue
            for address in addresses:
                port = int(address[1])
                out[(str(address[0]), port)] = self._kind(server.mode, port)
        web = webui.web_address(ctx.master)
        if web is not None:
            out[web] = ListenerKind.WEB
        self._key, self._addresses = key, out
        return out

    def _kind(self, mode: Any, port: int) -> ListenerKind:
        if isinstance(mode, mode_specs.RegularMode):
            return ListenerKind.MESH
        if isinstance(mode, mode_specs.ReverseMode):
            return ListenerKind.GATEWAY if port in self.gateway_ports else ListenerKind.ADMIN
        return ListenerKind.PROXY  # any other mode a mitmdump user added: never a destination


def from_self(flow: http.HTTPFlow, own: OwnSockets) -> bool:
    """Did this request's connection come from one of the proxy's own upstream sockets?"""
    return own.opened_connection(flow.client_conn)
