"""Gateway analyzers: a VirtualService host no server of its Gateway serves, Gateways that
claim the same host on the same port, and Gateways that serve the same certificate.

Mirrors istio/istio ``pkg/config/analysis/analyzers/virtualservice/gateways.go``
(VirtualServiceHostNotFoundInGateway, IST0132), ``gateway/conflictinggateway.go``
(ConflictingGateways, IST0145) and ``gateway/certificate.go`` (GatewayDuplicateCertificate,
IST0138: two Gateways on the same gateway workloads with the same ``credentialName``, or the same
``serverCertificate`` and ``privateKey``, make HTTP/2 clients that reuse a connection for the other
host get 404). Istio applies these configurations; they misbehave at run time (the gateway
answers 404 ``NR`` for the unserved hosts; only one of the conflicting servers gets the host), so
they are warnings and the proxy still loads them. Two Gateways conflict when their selectors are
equal or a WorkloadEntry (standing in for a pod) is selected by both.
"""

from __future__ import annotations

from chaoskit.config.gateway import Gateway, Server, ServerTLSSettings, routed_hosts
from chaoskit.config.issues import Issues
from chaoskit.config.mesh import Mesh, labels_match
from chaoskit.config.virtual_service import MESH

HOST_NOT_FOUND_IN_GATEWAY = "IST0132"
DUPLICATE_CERTIFICATE = "IST0138"
CONFLICTING_GATEWAYS = "IST0145"


def analyze(mesh: Mesh, issues: Issues) -> None:
    _hosts_not_in_gateway(mesh, issues)
    _conflicting_gateways(mesh, issues)
    _duplicate_certificates(mesh, issues)


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


def _same_workloads(mesh: Mesh, a: Gateway, b: Gateway) -> bool:
    """Both Gateways configure one gateway workload: equal selectors, or a WorkloadEntry (a pod
    here) that both select (Istio: a pod matched by both when one selector's text contains the
    other's)."""
    if a.selector == b.selector:
        return True
    if not a.selector or not b.selector:
        return False
    return any(
        labels_match(a.selector, w.labels) and labels_match(b.selector, w.labels)
        for w in mesh.workload_entries
    )


def _conflicting_gateways(mesh: Mesh, issues: Issues) -> None:
    """Same gateway workloads, same port, a host (same bind) in both: Istio's
    ``CheckDuplicates``. Reported on each of the Gateways involved, as Istio does."""
    servers = [(gw, s, s.port.number) for gw in mesh.gateways for s in gw.servers if s.port]
    for gw, server, number in servers:
        keys = _host_keys(server)
        others = sorted(
            {
                other.ref
                for other, o_server, o_number in servers
                if other.ref != gw.ref
                and _same_workloads(mesh, gw, other)
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
                f"also claimed by {', '.join(others)} on the same gateway workloads: only one "
                "server gets each host",
                code=CONFLICTING_GATEWAYS,
            )


def _same_certificate(a: ServerTLSSettings, b: ServerTLSSettings) -> bool:
    """Istio's ``haveSameCertificate``: equal credential names, else equal certificate and key
    files (``credentialNames`` and ``tlsCertificates`` are not compared)."""
    if a.credential_name and b.credential_name:
        return a.credential_name == b.credential_name
    if a.credential_name or b.credential_name:
        return False
    return bool(
        a.server_certificate
        and a.server_certificate == b.server_certificate
        and a.private_key
        and a.private_key == b.private_key
    )


def _duplicate_certificates(mesh: Mesh, issues: Issues) -> None:
    """Reported on a Gateway when another Gateway whose selector includes all of its selector
    labels (every gateway workload it configures also gets the other) serves the same
    certificate; an empty selector includes every Gateway (Istio's ``getGatewaysWithSelector``,
    with ``SCOPE_GATEWAY_TO_NAMESPACE`` off, its default)."""
    for gw in mesh.gateways:
        for other in mesh.gateways:
            if other is gw or not labels_match(gw.selector, other.selector):
                continue
            for server in gw.servers:
                mine = server.tls
                if mine is None or not any(
                    o.tls is not None and _same_certificate(mine, o.tls) for o in other.servers
                ):
                    continue
                issues.warning(
                    server.location,
                    gw.ref,
                    f"spec.servers[{server.index}].tls",
                    f"the same certificate is served by {other.ref}: HTTP/2 clients that reuse a "
                    "connection for the other Gateway's hosts may get 404",
                    code=DUPLICATE_CERTIFICATE,
                )
