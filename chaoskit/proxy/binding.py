"""Which sockets the proxy listens on, and what each one is for.

One forward-proxy listener for the mesh; one more per named workload (``--workload
productpage=15002``: every request on it comes from that workload, as each pod's sidecar has
its own outbound listener, so a client needs no credentials in its proxy URL); one
reverse-proxy listener per Gateway HTTP port (moved by ``--gateway-port`` or an offset when
Istio's YAML asks for a port this machine cannot give); the admin listener. Each listener is a
mitmproxy mode spec; a change of configuration may add or drop Gateway listeners, and is
refused before anything is swapped when one of them cannot bind.
"""

from __future__ import annotations

import dataclasses
import socket

from chaoskit.config.fields import did_you_mean
from chaoskit.config.gateway import Gateway
from chaoskit.config.mesh import Mesh
from chaoskit.errors import GatewayPortError, ProxyError
from chaoskit.proxy.runtime import regular_mode, reverse_mode


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_gateway_ports(mesh: Mesh) -> list[int]:
    """Ports of every HTTP-ish Gateway server: each becomes a reverse-proxy listener."""
    ports: set[int] = set()
    for gw in mesh.gateways:
        assert isinstance(gw, Gateway)
        for server in gw.servers:
            if server.is_http and server.port is not None:
                ports.add(server.port.number)
    return sorted(ports)


@dataclasses.dataclass(frozen=True)
class Listeners:
    """The mode specs of one configuration, and what the extra ones serve."""

    modes: list[str]
    #: spec → the Gateway port in the YAML it serves
    gateways: dict[str, int]
    #: spec → the workload whose outbound listener it is
    workloads: dict[str, str]


class ListenerPlan:
    """Decides the listeners for a configuration (the host, ports and mappings stay fixed)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        gateway_ports: dict[int, int] | None = None,
        gateway_port_offset: int = 0,
        workload_ports: dict[str, int] | None = None,
        admin_spec: str | None = None,
    ) -> None:
        self.host = host
        self.main = regular_mode(host, port)
        # mitmproxy refuses two listeners on the same (host, 0), so extra listeners that should
        # take "any free port" get one picked here (the main listener binds port 0 itself).
        self._gateway_map = {k: v or free_port(host) for k, v in (gateway_ports or {}).items()}
        self._gateway_offset = gateway_port_offset
        self._workloads = {
            regular_mode(host, p or free_port(host)): name
            for name, p in (workload_ports or {}).items()
        }
        self.admin_spec = admin_spec

    def check_workloads(self, mesh: Mesh) -> None:
        """A workload listener names a workload the mesh declares (a typo would otherwise
        make an anonymous caller that matches no ``sourceLabels``)."""
        known = mesh.workloads_by_name
        for name in self._workloads.values():
            if name not in known:
                raise ProxyError(
                    f"workload {name!r} (--workload) is not declared: no WorkloadEntry or "
                    f"Deployment has that name{did_you_mean(name, known)}"
                )

    def listeners(self, mesh: Mesh) -> Listeners:
        modes = [self.main, *self._workloads]
        gateways: dict[str, int] = {}
        for config_port in http_gateway_ports(mesh):
            bind = self._gateway_map.get(config_port)
            if bind is None:
                bind = config_port + self._gateway_offset
                if not 0 < bind <= 65535:
                    raise GatewayPortError(
                        f"Gateway port {config_port} moved by {self._gateway_offset:+d} is "
                        f"{bind}, not a port", config_port,
                    )  # fmt: skip
            spec = reverse_mode(self.host, bind)
            gateways[spec] = config_port
            modes.append(spec)
        if self.admin_spec is not None:
            modes.append(self.admin_spec)
        return Listeners(modes, gateways, dict(self._workloads))

    def check_free(self, specs: list[str], listeners: Listeners) -> None:
        """Refuse a start or change whose new listeners cannot bind, before anything is
        swapped, naming the listener: the forward proxy, a workload's, a Gateway's (by its
        YAML port), the admin."""
        for spec in specs:
            host, _, port = spec.rpartition("@")[2].rpartition(":")
            if int(port) == 0:
                continue
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, int(port)))
                except OSError as e:
                    raise self._cannot_listen(spec, f"{host}:{port}", e, listeners) from None

    def _cannot_listen(self, spec: str, where: str, e: OSError, listeners: Listeners) -> ProxyError:
        if spec in listeners.gateways:
            config_port = listeners.gateways[spec]
            bound = int(where.rpartition(":")[2])
            moved = f" (its port {config_port} in the YAML)" if bound != config_port else ""
            return GatewayPortError(
                f"cannot listen on {where} for a Gateway{moved}: {e.strerror}", config_port
            )
        if spec in listeners.workloads:
            what = f"workload {listeners.workloads[spec]}'s listener"
        elif spec == self.main:
            what = "the forward proxy"
        else:
            what = "the admin listener"
        return ProxyError(f"cannot listen on {where} for {what}: {e.strerror}")
