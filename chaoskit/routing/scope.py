"""What one proxy can see: Sidecar selection, ``exportTo``, request host names, clusters.

A :class:`Scope` describes the proxy that routes a request — the caller's sidecar (its
namespace and Sidecar resource) or a gateway (its namespace, no Sidecar) — and answers the
visibility questions Istio settles when it builds that proxy's configuration:

- Sidecar for a workload (istio/api ``sidecar.proto``): a Sidecar in the workload's namespace whose
  ``workloadSelector`` matches > that namespace's selector-less Sidecar > the selector-less
  Sidecar of the root namespace ``istio-system`` > none.
- ``exportTo``: empty or ``*`` = everyone, ``.`` = own namespace, ``~`` = nobody, else a list.
- A service is visible when exported to the proxy's namespace and imported by its Sidecar's
  egress hosts; a cluster (``outbound|port|subset|host``) exists when its service is visible,
  has that port, and the subset is defined by a DestinationRule.
- When several ServiceEntries define a host, the proxy uses the first visible one by Istio's
  precedence (:mod:`chaoskit.config.exports`), so callers of two namespaces may reach different
  endpoints under one host name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from chaoskit.config.exports import exported_to
from chaoskit.config.hosts import CLUSTER_DOMAIN, is_ip
from chaoskit.config.http_route import Destination
from chaoskit.config.mesh import Mesh, Service
from chaoskit.config.mesh_config import MeshDefaults
from chaoskit.config.sidecar import OutboundTrafficPolicy, Sidecar, imports_host
from chaoskit.routing.decision import ClusterKey
from chaoskit.routing.request import Workload

ROOT_NAMESPACE = "istio-system"


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Kubernetes label selection: every selector label is present with the same value."""
    return all(labels.get(k) == v for k, v in selector.items())


def sidecar_for(sidecars: Sequence[Sidecar], workload: Workload) -> Sidecar | None:
    """The Sidecar that configures ``workload``'s proxy (first one wins among equals)."""
    if not sidecars:
        return None
    local = [s for s in sidecars if s.namespace == workload.namespace]
    for s in local:
        if s.workload_selector and labels_match(s.workload_selector, workload.labels):
            return s
    for s in local:
        if not s.workload_selector:
            return s
    for s in sidecars:
        if s.namespace == ROOT_NAMESPACE and not s.workload_selector:
            return s
    return None


def outbound_policy(sidecar: Sidecar | None, defaults: MeshDefaults) -> OutboundTrafficPolicy:
    """The Sidecar's ``outboundTrafficPolicy`` when it has one, else the mesh's mode."""
    if sidecar is not None and sidecar.outbound_traffic_policy is not None:
        return sidecar.outbound_traffic_policy
    return OutboundTrafficPolicy(defaults.outbound_policy)


def host_candidates(host: str, namespace: str) -> tuple[str, ...]:
    """Registry names a request Host may denote for a client in ``namespace``, literal first.

    ``reviews`` → ``reviews.<namespace>.svc.cluster.local``; ``reviews.prod`` and
    ``reviews.prod.svc`` → ``reviews.prod.svc.cluster.local`` (the virtual-host domains Istio
    generates for Kubernetes-style services: istio/istio ``pilot/pkg/networking/core/httproute.go``,
    ``generateVirtualHostDomains``).
    """
    host = host.lower().rstrip(".")
    if not host or is_ip(host) or host.endswith(CLUSTER_DOMAIN):
        return (host,)
    dots = host.count(".")
    if dots == 0:
        return host, f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if dots == 1:
        return host, f"{host}.{CLUSTER_DOMAIN}"
    if dots == 2 and host.endswith(".svc"):
        return host, f"{host}.cluster.local"
    return (host,)


def service_ports(svc: Service) -> tuple[int, ...]:
    return tuple(p.number for p in svc.entry.ports)


def cluster_key(mesh: Mesh, svc: Service, port: int, subset: str | None = None) -> ClusterKey:
    """The cluster of ``svc`` on ``port``, naming its ServiceEntry when the host is shared."""
    entry = svc.entry.ref if mesh.is_shared(svc.host) else ""
    return ClusterKey(svc.host, port, subset, entry)


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """The proxy routing a request: its namespace, Sidecar (sidecars only) and port."""

    mesh: Mesh
    namespace: str
    sidecar: Sidecar | None
    #: The port the proxy serves: the service port on a sidecar, the server port on a gateway.
    port: int

    def service_visible(self, svc: Service, port: int | None = None) -> bool:
        """Exported to this namespace and imported by the Sidecar (for ``port``, else any)."""
        e = svc.entry
        if not exported_to(e.export_to, e.namespace, self.namespace):
            return False
        return self.sidecar is None or imports_host(self.sidecar, svc.host, e.namespace, port)

    def service(self, fqdn: str) -> Service | None:
        """The service this proxy has for ``fqdn``, when several entries define it the one
        Istio's precedence picks among those exported here and imported by the Sidecar."""
        sidecar = self.sidecar
        if sidecar is None:
            return self.mesh.visible_service(fqdn, self.namespace)
        return self.mesh.visible_service(
            fqdn, self.namespace, lambda s: imports_host(sidecar, s.host, s.entry.namespace)
        )

    def host_visible(self, pattern: str, owner_namespace: str, export_to: Sequence[str]) -> bool:
        """Whether a VirtualService host of ``owner_namespace`` is visible on this port."""
        if not exported_to(export_to, owner_namespace, self.namespace):
            return False
        if self.sidecar is None:
            return True
        return imports_host(self.sidecar, pattern, owner_namespace, self.port)

    def cluster(self, dest: Destination) -> tuple[ClusterKey, bool]:
        """The cluster a destination names and whether this proxy has it.

        Port: ``destination.port``, else the service's only port, else the proxy's port
        (Istio's ``GetDestinationCluster``).
        """
        svc = self.service(dest.fqdn)
        known = svc if svc is not None else self.mesh.find_service(dest.fqdn)
        ports = service_ports(known) if known is not None else ()
        port = dest.port or (ports[0] if len(ports) == 1 else self.port)
        if svc is None:
            return ClusterKey(dest.fqdn, port, dest.subset), False
        key = cluster_key(self.mesh, svc, port, dest.subset)
        if ports and port not in ports:
            return key, False
        if dest.subset is not None and dest.subset not in self.mesh.subsets_for(svc.host):
            return key, False
        return key, True
