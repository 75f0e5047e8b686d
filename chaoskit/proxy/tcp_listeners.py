"""TCP listeners: one local port per service port a client reaches over plain TCP.

A client of Postgres or Redis cannot use an HTTP proxy, so chaoskit gives the service port a
listener of its own, as a sidecar's outbound listener for that port would be
(``chaoskit proxy --tcp redis:6379=16379``, ``Proxy(tcp_ports={"redis:6379": 0})``): the client
connects to the listener instead of the service, and every connection is routed, balanced and
faulted by :class:`~chaoskit.proxy.tcp_session.TcpProxy`. A listener may stand for a named
workload (``productpage@redis:6379``), whose labels then select ``sourceLabels`` matches.

Listeners run on the proxy's loop, with plain asyncio (no mitmproxy); they are fixed for the
proxy's life (a reload changes where connections go, not where clients connect).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from chaoskit.config.fields import did_you_mean
from chaoskit.config.mesh import Mesh
from chaoskit.config.tcp_ports import carries_tcp, describe
from chaoskit.errors import ProxyError
from chaoskit.proxy.tcp_connection import TcpTarget
from chaoskit.proxy.tcp_session import TcpProxy
from chaoskit.routing.scope import host_candidates


def check_target(mesh: Mesh, target: TcpTarget) -> str | None:
    """Why ``target`` cannot have a TCP listener in ``mesh`` (``None``: it can)."""
    if target.workload and target.workload not in mesh.workloads_by_name:
        known = mesh.workloads_by_name
        return (
            f"workload {target.workload!r} is not declared: no WorkloadEntry or Deployment has "
            f"that name{did_you_mean(target.workload, known)}"
        )
    namespace = mesh.workloads_by_name[target.workload].namespace if target.workload else "default"
    svc = next(
        (s for n in host_candidates(target.host, namespace) if (s := mesh.find_service(n))), None
    )
    if svc is None:
        names = sorted({h.split(".")[0] for h in mesh.services})
        return (
            f"no service {target.host!r} in the configuration (no ServiceEntry or Kubernetes "
            f"Service defines it){did_you_mean(target.host, names)}"
        )
    port = svc.entry.port(target.port)
    ports = ", ".join(describe(p) for p in svc.entry.ports)
    if port is None:
        return f"{target.host} has no port {target.port} (ports: {ports})"
    if not carries_tcp(port):
        return (
            f"{target.host}:{target.port} is not a TCP port ({describe(port)}): HTTP clients "
            "reach it through the proxy URL (HTTP_PROXY); a TCP listener serves TCP, MONGO, "
            "MYSQL, REDIS, THRIFT or unset protocols"
        )
    return None


def tcp_targets(ports: Mapping[str, int], mesh: Mesh) -> dict[TcpTarget, int]:
    """``Proxy(tcp_ports=...)`` read and checked: each ``[WORKLOAD@]HOST:PORT`` a TCP port of
    the configuration, else :class:`~chaoskit.errors.ProxyError`."""
    out: dict[TcpTarget, int] = {}
    for text, port in ports.items():
        try:
            target = TcpTarget.parse(text)
        except ValueError as e:
            raise ProxyError(f"tcp_ports: {e}") from None
        problem = check_target(mesh, target)
        if problem is not None:
            raise ProxyError(f"TCP listener {target}: {problem}")
        out[target] = port
    return out


class TcpListeners:
    """The open TCP listeners of one proxy, by what they stand for."""

    def __init__(self, proxy: TcpProxy, host: str) -> None:
        self.proxy = proxy
        self.host = host
        self._servers: dict[TcpTarget, asyncio.Server] = {}
        #: target → the (host, port) it listens on
        self.bound: dict[TcpTarget, tuple[str, int]] = {}

    async def open(self, target: TcpTarget, port: int) -> tuple[str, int]:
        """Listen for ``target`` on ``port`` (0: any free port); :class:`OSError` when it cannot.
        Opening a target that already listens returns where it does."""
        if target in self.bound:
            return self.bound[target]

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self.proxy.handle(target, reader, writer)

        server = await asyncio.start_server(accept, self.host, port)
        address = server.sockets[0].getsockname()
        self._servers[target] = server
        self.bound[target] = (str(address[0]), int(address[1]))
        self.proxy.own.add(self.bound[target])
        return self.bound[target]

    async def close(self) -> None:
        """Stop listening, abort the connections still open, free every port."""
        servers = list(self._servers.values())
        self._servers.clear()
        self.bound.clear()
        self.proxy.own.clear()
        for server in servers:
            server.close()
        await self.proxy.close()
        for server in servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)
