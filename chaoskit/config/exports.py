"""``exportTo``: which namespaces see a resource, and which ServiceEntry of a host each one sees.

istio/api ``service_entry.proto``, ``virtual_service.proto``: an empty ``exportTo`` or ``*``
exports to every namespace, ``.`` to the resource's own namespace, ``~`` to none, any other entry
to that namespace.

Several ServiceEntries may define one host (in different namespaces, or twice in one). Istio builds
each proxy's service list from the services exported to its namespace and keeps the first one per
host name (istio/istio ``pilot/pkg/model/sidecar.go``, ``appendSidecarServices``), in the order of
``push_context.go`` ``servicesExportedToNamespace``: services exported to that namespace by name or
with ``.`` first, then public ones, each group oldest first; a Kubernetes Service always wins over
ServiceEntries of the same host. chaoskit's "oldest" is configuration order (load order).
"""

from __future__ import annotations

from collections.abc import Sequence

PUBLIC = "*"
LOCAL = "."
NONE = "~"


def exported_to(export_to: Sequence[str], owner_namespace: str, namespace: str) -> bool:
    """Whether a resource of ``owner_namespace`` with this ``exportTo`` is seen in ``namespace``."""
    if not export_to:
        return True
    for e in export_to:
        if e in (PUBLIC, namespace) or (e == LOCAL and owner_namespace == namespace):
            return True
    return False


def is_public(export_to: Sequence[str]) -> bool:
    """Exported to every namespace (Istio's ``ServiceIndex.public``)."""
    return not export_to or PUBLIC in export_to


def precedence(export_to: Sequence[str], *, from_kubernetes: bool = False) -> tuple[int, int]:
    """Sort key among definitions of one host that a namespace sees (lower wins; ties keep
    configuration order): a Kubernetes Service, then entries exported to the namespace by name or
    ``.``, then public entries."""
    return (0 if from_kubernetes else 1, 1 if is_public(export_to) else 0)


def scopes(export_to: Sequence[str], owner_namespace: str) -> frozenset[str]:
    """Where a resource is seen, as Istio's analyzers index it (``exportToScopes``,
    ``initMeshGatewayHosts``): ``{"*"}`` for everyone, else the namespaces (``.`` = its own)."""
    if is_public(export_to):
        return frozenset({PUBLIC})
    return frozenset(owner_namespace if e == LOCAL else e for e in export_to)


def scopes_overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    """Some namespace sees both."""
    return PUBLIC in a or PUBLIC in b or bool(a & b)
