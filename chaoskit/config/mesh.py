"""The mesh: every resource of a configuration, indexed the way the proxy will look them up.

A :class:`Mesh` is built once per configuration (at load and at every hot reload) and is
immutable, so a request can take one reference and finish on that snapshot even if a new one is
swapped in meanwhile.

Layering: resources are applied in order and a later resource with the same kind, namespace and
name *replaces* the earlier one, as ``kubectl apply`` would. That is how a test or an experiment
layers a variant (``reviews-test-v2.yaml``) over a base mesh.

ServiceEntry hosts: in Istio they are literal names. Without Kubernetes there are no Services,
so chaoskit treats a dot-free ServiceEntry host (``reviews``) as the Kubernetes-style service
``reviews.<namespace>.svc.cluster.local``; VirtualServices and DestinationRules written with short
names then refer to it exactly as they would in a cluster (docs/istio-compatibility.md).

Several ServiceEntries may define one host. :meth:`Mesh.find_service` answers "is it defined at
all" (the first definition); :meth:`Mesh.visible_service` answers what a proxy in one namespace
routes to, by ``exportTo`` and Istio's precedence (:mod:`.exports`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from chaoskit.config import hosts
from chaoskit.config.destination_rule import DestinationRule, Subset
from chaoskit.config.exports import exported_to, precedence
from chaoskit.config.gateway import Gateway
from chaoskit.config.issues import Issues
from chaoskit.config.kubernetes import as_registry
from chaoskit.config.mesh_config import MeshConfig, MeshDefaults, effective_defaults
from chaoskit.config.resource import Resource
from chaoskit.config.service_entry import ServiceEntry, WorkloadEntry
from chaoskit.config.sidecar import Sidecar
from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.config.virtual_service import VirtualService

R = TypeVar("R", bound=Resource)


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Kubernetes label selection: every selector label is present with the same value."""
    return all(labels.get(k) == v for k, v in selector.items())


@dataclasses.dataclass(frozen=True, slots=True)
class Service:
    """One host of the registry and the ServiceEntry that defines it."""

    host: str
    entry: ServiceEntry

    def exported_to(self, namespace: str) -> bool:
        return exported_to(self.entry.export_to, self.entry.namespace, namespace)

    def precedence(self) -> tuple[int, int]:
        return precedence(self.entry.export_to, from_kubernetes=self.entry.from_kubernetes)


@dataclasses.dataclass(frozen=True)
class Mesh:
    """An indexed, immutable configuration snapshot."""

    resources: tuple[Resource, ...] = ()
    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    service_entries: tuple[ServiceEntry, ...] = ()
    workload_entries: tuple[WorkloadEntry, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    sidecars: tuple[Sidecar, ...] = ()
    upstream_faults: tuple[UpstreamFault, ...] = ()
    mesh_configs: tuple[MeshConfig, ...] = ()
    defaults: MeshDefaults = dataclasses.field(default_factory=lambda: effective_defaults(()))
    #: fully qualified host → its first definition; wildcard ServiceEntry hosts are kept apart.
    services: Mapping[str, Service] = dataclasses.field(default_factory=dict)
    #: fully qualified host → every definition, in configuration order.
    services_by_host: Mapping[str, tuple[Service, ...]] = dataclasses.field(default_factory=dict)
    wildcard_services: tuple[Service, ...] = ()
    #: fully qualified DR host → the DestinationRules for it, in order (Istio merges them).
    rules_by_host: Mapping[str, tuple[DestinationRule, ...]] = dataclasses.field(
        default_factory=dict
    )
    gateways_by_ref: Mapping[str, Gateway] = dataclasses.field(default_factory=dict)
    workloads_by_name: Mapping[str, WorkloadEntry] = dataclasses.field(default_factory=dict)

    def find_service(self, fqdn: str) -> Service | None:
        """The service for a host: an exact name first, then the most specific wildcard."""
        if (svc := self.services.get(fqdn)) is not None:
            return svc
        best: Service | None = None
        for svc in self.wildcard_services:
            if hosts.matches(svc.host, fqdn) and (best is None or len(svc.host) > len(best.host)):
                best = svc
        return best

    def visible_services(self, fqdn: str, namespace: str) -> Iterator[Service]:
        """The definitions of ``fqdn`` a proxy in ``namespace`` sees, the one it uses first:
        exact hosts by Istio's precedence (:func:`.exports.precedence`), then wildcard hosts,
        the most specific first. Lazy: wildcards are only searched when asked for."""
        exact = self.services_by_host.get(fqdn, ())
        if len(exact) == 1:  # the common case: no ordering to do
            if exact[0].exported_to(namespace):
                yield exact[0]
        elif exact:
            yield from sorted(
                (s for s in exact if s.exported_to(namespace)), key=Service.precedence
            )
        if self.wildcard_services:
            wild = [
                s
                for s in self.wildcard_services
                if hosts.matches(s.host, fqdn) and s.exported_to(namespace)
            ]
            yield from sorted(wild, key=lambda s: (-len(s.host), s.precedence()))

    def visible_service(
        self,
        fqdn: str,
        namespace: str,
        accept: Callable[[Service], bool] | None = None,
    ) -> Service | None:
        """The service a proxy in ``namespace`` routes ``fqdn`` to: the first visible definition
        that ``accept`` (the proxy's Sidecar imports) lets through."""
        for svc in self.visible_services(fqdn, namespace):
            if accept is None or accept(svc):
                return svc
        return None

    def is_shared(self, host: str) -> bool:
        """Several ServiceEntries define ``host`` (an FQDN or a wildcard ServiceEntry host)."""
        if host.startswith("*"):
            return sum(1 for s in self.wildcard_services if s.host == host) > 1
        return len(self.services_by_host.get(host, ())) > 1

    def defined_by(self, host: str, entry_ref: str) -> Service | None:
        """The definition of ``host`` by the ServiceEntry ``entry_ref`` (its ``ref``); with an
        empty ref, :meth:`find_service`. A cluster is built from this (:class:`ClusterKey`)."""
        if not entry_ref:
            return self.find_service(host)
        pool = self.wildcard_services if host.startswith("*") else self.services_by_host.get(host)
        return next((s for s in pool or () if s.host == host and s.entry.ref == entry_ref), None)

    def destination_rules_for(self, fqdn: str) -> tuple[DestinationRule, ...]:
        """DRs of the most specific matching host (exact, then longest wildcard), in order."""
        if fqdn in self.rules_by_host:
            return self.rules_by_host[fqdn]
        best = ""
        for pattern in self.rules_by_host:
            if (
                pattern.startswith("*")
                and hosts.matches(pattern, fqdn)
                and len(pattern) > len(best)
            ):
                best = pattern
        return self.rules_by_host.get(best, ())

    def subsets_for(self, fqdn: str) -> dict[str, Subset]:
        """Subsets defined for a host; the first definition of a duplicate name wins (Istio)."""
        out: dict[str, Subset] = {}
        for dr in self.destination_rules_for(fqdn):
            for subset in dr.subsets:
                out.setdefault(subset.name, subset)
        return out


def service_host(host: str, namespace: str) -> str:
    """A ServiceEntry host as chaoskit registers it (short names become cluster names)."""
    return hosts.expand(host, namespace)


def _of(resources: Sequence[Resource], kind: type[R]) -> tuple[R, ...]:
    return tuple(r for r in resources if isinstance(r, kind))


def layer(resources: Iterable[Resource], issues: Issues | None = None) -> list[Resource]:
    """Apply resources in order; a later one with the same kind/namespace/name replaces the
    earlier one. Two of them in the *same file* is almost always a copy-paste slip: warned."""
    by_key: dict[tuple[str, str, str], Resource] = {}
    for r in resources:
        key = (r.KIND, r.namespace, r.name)
        old = by_key.get(key)
        if old is not None and issues is not None and old.location.file == r.location.file:
            issues.warning(
                r.location,
                r.ref,
                "metadata.name",
                f"replaces the {r.KIND} of the same name at line {old.location.line}",
            )
        by_key.pop(key, None)  # re-insert so the replacement takes the later position
        by_key[key] = r
    return list(by_key.values())


def build_mesh(resources: Iterable[Resource], issues: Issues | None = None) -> Mesh:
    """Index resources into a :class:`Mesh` (no validation here; see :mod:`.checks`).
    Kubernetes Services and Deployments become registry entries first (:mod:`.kubernetes`)."""
    rs = layer(as_registry(layer(resources, issues), issues))  # a later ServiceEntry wins
    entries = _of(rs, ServiceEntry)
    by_host: dict[str, list[Service]] = {}
    wildcard: list[Service] = []
    for se in entries:
        for fq in dict.fromkeys(service_host(h, se.namespace) for h in se.hosts):
            svc = Service(fq, se)
            if fq.startswith("*"):
                wildcard.append(svc)
            else:
                by_host.setdefault(fq, []).append(svc)
    rules: dict[str, list[DestinationRule]] = {}
    for dr in _of(rs, DestinationRule):
        rules.setdefault(dr.fqdn_host, []).append(dr)
    gateways = _of(rs, Gateway)
    workloads = _of(rs, WorkloadEntry)
    configs = _of(rs, MeshConfig)
    return Mesh(
        resources=tuple(rs),
        virtual_services=_of(rs, VirtualService),
        destination_rules=_of(rs, DestinationRule),
        service_entries=entries,
        workload_entries=workloads,
        gateways=gateways,
        sidecars=_of(rs, Sidecar),
        upstream_faults=_of(rs, UpstreamFault),
        mesh_configs=configs,
        defaults=effective_defaults(configs),
        services={h: defs[0] for h, defs in by_host.items()},
        services_by_host={h: tuple(defs) for h, defs in by_host.items()},
        wildcard_services=tuple(wildcard),
        rules_by_host={h: tuple(v) for h, v in rules.items()},
        gateways_by_ref={f"{g.namespace}/{g.name}": g for g in gateways},
        workloads_by_name={w.name: w for w in workloads},
    )
