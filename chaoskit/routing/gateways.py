"""Gateway listeners: one route table per port, as Istio builds it (``gateway.go``).

All HTTP servers of all Gateways on one port are served by one listener (docs/configuration.md §8: a
reverse-proxy on ``127.0.0.1:<port>``). For each server, every VirtualService bound to the server's
Gateway (``gateways: [ns/name]``) and exported to the Gateway's namespace contributes its rules to
the virtual hosts ``server hosts ∩ VirtualService hosts`` (``pickMatchingGatewayHosts``). Rules of
several VirtualServices for one host are concatenated in configuration order, then catch-all entries
are moved last (``SortVHostRoutes``). Rules are compiled per Gateway: entries
whose ``port``, ``gateways`` or source selectors exclude that gateway proxy are dropped, and a
VirtualService stops after its first catch-all entry. The gateway proxy's identity for
``sourceLabels`` / ``sourceNamespace`` is its Gateway's ``selector`` and namespace.

Virtual host selection ignores the Host's port and picks, like Envoy, an exact domain, else the
longest ``*.suffix`` wildcard, else ``*``. ``tls.httpsRedirect`` on a server makes its virtual
hosts answer 301 to ``https://``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from chaoskit.config.exports import exported_to
from chaoskit.config.gateway import Gateway, Server, routed_hosts
from chaoskit.config.hosts import matches as host_matches
from chaoskit.config.http_route import HTTPRoute
from chaoskit.config.match import HTTPMatchRequest
from chaoskit.config.virtual_service import VirtualService
from chaoskit.routing.matcher import is_catch_all, selected_entries
from chaoskit.routing.request import Workload


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayRoute:
    """One entry of a gateway virtual host: the rule, the match entry, and who bound it."""

    virtual_service: VirtualService
    route: HTTPRoute
    match: HTTPMatchRequest
    #: ``ns/name`` of the Gateway through which the VirtualService is bound.
    gateway: str
    #: The gateway proxy's identity (Gateway selector and namespace).
    proxy: Workload


@dataclasses.dataclass(frozen=True, slots=True)
class VirtualHost:
    domain: str
    routes: tuple[GatewayRoute, ...] = ()
    https_redirect: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class GatewayListener:
    """The route table of one gateway port."""

    port: int
    #: ``(Gateway ref, server)`` of every HTTP server on this port.
    servers: tuple[tuple[str, Server], ...]
    exact: Mapping[str, VirtualHost]
    #: Wildcard domains, most specific first (``*`` last).
    wildcards: tuple[VirtualHost, ...]

    def virtual_host(self, host: str) -> VirtualHost | None:
        """Envoy's domain selection for a Host (already lower-case, port stripped)."""
        if (vh := self.exact.get(host)) is not None:
            return vh
        return next((vh for vh in self.wildcards if host_matches(vh.domain, host)), None)


@dataclasses.dataclass
class _Builder:
    domain: str
    routes: list[GatewayRoute] = dataclasses.field(default_factory=list)
    https_redirect: bool = False

    def build(self) -> VirtualHost:
        ordered = [r for r in self.routes if not is_catch_all(r.match)]
        ordered += [r for r in self.routes if is_catch_all(r.match)]
        return VirtualHost(self.domain, tuple(ordered), self.https_redirect)


def _bound(gateway_ref: str, gw: Gateway, vss: Iterable[VirtualService]) -> list[VirtualService]:
    return [
        vs
        for vs in vss
        if gateway_ref in vs.gateways
        and not vs.is_delegate
        and exported_to(vs.export_to, vs.namespace, gw.namespace)
    ]


def build_listeners(
    gateways: Iterable[Gateway], virtual_services: Iterable[VirtualService]
) -> dict[int, GatewayListener]:
    """A :class:`GatewayListener` per port that has at least one HTTP server."""
    vss = tuple(virtual_services)
    by_port: dict[int, dict[str, _Builder]] = {}
    servers: dict[int, list[tuple[str, Server]]] = {}
    for gw in gateways:
        ref = f"{gw.namespace}/{gw.name}"
        proxy = Workload(gw.name, gw.namespace, gw.selector)
        bound = _bound(ref, gw, vss)
        for server in gw.servers:
            if server.port is None or not server.is_http:
                continue
            port = server.port.number
            servers.setdefault(port, []).append((ref, server))
            vhosts = by_port.setdefault(port, {})
            redirect = server.tls is not None and server.tls.https_redirect
            for vs in bound:
                hosts = routed_hosts(server, vs.namespace, vs.fqdn_hosts)
                entries = selected_entries(vs.http, port, proxy, ref) if hosts else ()
                for h in hosts if entries else ():
                    b = vhosts.setdefault(h.lower(), _Builder(h.lower()))
                    b.routes += [GatewayRoute(vs, r, m, ref, proxy) for r, m in entries]
                    b.https_redirect = b.https_redirect or redirect
            if redirect:
                for entry in server.hosts:
                    b = vhosts.setdefault(entry.dns_name, _Builder(entry.dns_name))
                    b.https_redirect = True
    out: dict[int, GatewayListener] = {}
    for port, builders in by_port.items():
        built = [b.build() for b in builders.values()]
        exact = {vh.domain: vh for vh in built if not vh.domain.startswith("*")}
        wild = sorted(
            (vh for vh in built if vh.domain.startswith("*")),
            key=lambda vh: (vh.domain == "*", -len(vh.domain)),
        )
        out[port] = GatewayListener(port, tuple(servers[port]), exact, tuple(wild))
    return out
