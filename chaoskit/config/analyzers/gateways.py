"""Gateway analyzers: a VirtualService host no server of its Gateway serves, and Gateways that
claim the same host on the same port.

Mirrors istio/istio ``pkg/config/analysis/analyzers/virtualservice/gateways.go``
(VirtualServiceHostNotFoundInGateway, IST0132) and ``gateway/conflictinggateway.go``
(ConflictingGateways, IST0145). Istio applies both configurations; they misbehave at run time (the
gateway answers 404 ``NR`` for the unserved hosts; only one of the conflicting servers gets the
host), so they are warnings and the proxy still loads them. Without pods, two Gateways conflict
only when their selectors are equal (Istio also compares selectors through the pods they pick).
"""

from __future__ import annotations

from chaoskit.config.gateway import Server, routed_hosts
from chaoskit.config.issues import Issues
from chaoskit.config.mesh import Mesh
from chaoskit.config.virtual_service import MESH

HOST_NOT_FOUND_IN_GATEWAY = "IST0132"
CONFLICTING_GATEWAYS = "IST0145"


def analyze(mesh: Mesh, issues: Issues) -> None:
    _hosts_not_in_gateway(mesh, issues)
    _conflicting_gateways(mesh, issues)


def _hosts_not_in_gateway(mesh: Mesh, issues: Issues) -> None:
    for vs in mesh.virtual_services:
        if vs.is_delegate:
            continue
        for i, ref in enumerate(vs.gateways):
            gw = mesh.gateways_by_ref.get(ref) if ref != MESH else None
            if gw is None:
                continue  # mesh, or a missing Gateway (IST0101, reported by checks)
            if any(routed_hosts(s, vs.namespace, vs.fqdn_hosts) for s in gw.servers):
                continue
            served = sorted({h.text for s in gw.servers for h in s.hosts})
            issues.warning(
                vs.location,
                vs.ref,
                f"spec.gateways[{i}]",
                f"no host of this VirtualService ({', '.join(vs.hosts)}) is served by Gateway "
                f"{ref} (server hosts: {', '.join(served) or 'none'}): the gateway never routes "
                "with it",
                code=HOST_NOT_FOUND_IN_GATEWAY,
            )


def _host_keys(server: Server) -> set[tuple[str, str, str | None]]:
    return {(h.namespace, h.dns_name.lower(), server.bind) for h in server.hosts}


def _conflicting_gateways(mesh: Mesh, issues: Issues) -> None:
    """Same selector, same port, a host (same bind) in both: Istio's ``CheckDuplicates``.

    Reported on each of the Gateways involved, as Istio does."""
    servers = [(gw, s, s.port.number) for gw in mesh.gateways for s in gw.servers if s.port]
    for gw, server, number in servers:
        keys = _host_keys(server)
        others = sorted(
            {
                other.ref
                for other, o_server, o_number in servers
                if other.ref != gw.ref
                and other.selector == gw.selector
                and o_number == number
                and keys & _host_keys(o_server)
            }
        )
        if others:
            issues.warning(
                server.location,
                gw.ref,
                f"spec.servers[{server.index}]",
                f"port {number} hosts {', '.join(h.text for h in server.hosts)} are "
                f"also claimed by {', '.join(others)} with the same selector: only one server "
                "gets each host",
                code=CONFLICTING_GATEWAYS,
            )
