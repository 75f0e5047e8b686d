"""How a named fault (:mod:`chaoskit.config.named_faults`) joins the configuration: a route
fault spliced into the mesh VirtualService of its host (see that module's docstring for the
rule Istio imposes), an UpstreamFault added as it is (pure)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaoskit.config import hosts
from chaoskit.config.fields import did_you_mean
from chaoskit.config.http_route import HTTPFaultInjection, HTTPRoute
from chaoskit.config.kubernetes import as_registry
from chaoskit.config.loader import load_text
from chaoskit.config.match import HTTPMatchRequest
from chaoskit.config.mesh import Mesh, layer
from chaoskit.config.named_faults import ISTIO_API, Fault
from chaoskit.config.resource import Resource
from chaoskit.config.service_entry import ServiceEntry
from chaoskit.config.virtual_service import MESH, VirtualService

# -- splicing a fault into VirtualService rules --------------------------------------------


def _overlay(own: HTTPMatchRequest, extra: HTTPMatchRequest) -> HTTPMatchRequest:
    """Both conditions at once (AND); where both set the same field, ``extra`` wins."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(HTTPMatchRequest):
        value = getattr(extra, f.name)
        if isinstance(value, Mapping):
            if value:
                changes[f.name] = {**getattr(own, f.name), **value}
        elif value not in (None, (), False):
            changes[f.name] = value
    return dataclasses.replace(own, **changes)


def with_fault(
    vs: VirtualService,
    fault: HTTPFaultInjection,
    matches: tuple[HTTPMatchRequest, ...],
    route_name: str | None = None,
) -> tuple[HTTPRoute, ...]:
    """``vs``'s rules with ``fault`` on each forwarding rule (only the one named ``route_name``
    when given); with ``matches``, a faulted copy narrowed by them goes in front of each such
    rule instead. Redirects, direct responses and delegations are left alone (Istio allows no
    fault beside a redirect or direct response)."""
    out: list[HTTPRoute] = []
    for route in vs.http:
        forwards = bool(route.route) and route.redirect is None and route.direct_response is None
        chosen = route_name is None or route.name == route_name
        if not forwards or route.delegate is not None or not chosen:
            out.append(route)
        elif matches:
            own = route.match or (HTTPMatchRequest(),)
            narrowed = tuple(_overlay(m, extra) for m in own for extra in matches)
            out.append(dataclasses.replace(route, match=narrowed, fault=fault))
            out.append(route)
        else:
            out.append(dataclasses.replace(route, fault=fault))
    return tuple(dataclasses.replace(r, index=i) for i, r in enumerate(out))


Key = tuple[str, str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A resource a fault became: ``patched`` (an existing VirtualService got the fault) or
    ``created``."""

    kind: str
    namespace: str
    name: str
    action: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _ports(resources: Iterable[Resource], fqdn: str) -> list[int]:
    """The ports of the registry's service ``fqdn`` (ServiceEntries, Kubernetes Services)."""
    for se in resources:
        if isinstance(se, ServiceEntry) and any(
            hosts.expand(h, se.namespace) == fqdn for h in se.hosts
        ):
            return [p.number for p in se.ports]
    return []


def _route_to(fault: Fault, name: str, ports: Sequence[int]) -> VirtualService:
    """A VirtualService that routes ``fault``'s host to itself (for a host that has none): one
    rule, or one per port when the service has several (a destination must then name its port,
    IST0112)."""
    dest: dict[str, Any] = {"host": fault.fqdn}
    rules: list[dict[str, Any]] = [{"route": [{"destination": dest}]}]
    if len(ports) > 1:
        rules = [
            {"match": [{"port": p}], "route": [{"destination": {**dest, "port": {"number": p}}}]}
            for p in ports
        ]
    spec = {"hosts": [fault.fqdn], "http": rules}
    doc = {"apiVersion": ISTIO_API, "kind": "VirtualService",
           "metadata": {"name": name, "namespace": fault.namespace}, "spec": spec}  # fmt: skip
    (vs,) = load_text(json.dumps(doc), fault.location.file).resources
    assert isinstance(vs, VirtualService)
    return dataclasses.replace(vs, location=fault.location)


def _free_name(base: str, taken: Iterable[Key], namespace: str) -> str:
    names = {name for kind, ns, name in taken if kind == VirtualService.KIND and ns == namespace}
    name, n = base, 1
    while name in names:
        n += 1
        name = f"{base}-{n}"
    return name


def _serving(vss: Mapping[Key, VirtualService], fqdn: str) -> tuple[list[Key], Key | None]:
    """The mesh VirtualServices naming ``fqdn`` and, when there is none, the most specific
    wildcard one that serves it."""
    mesh_vss = {k: vs for k, vs in vss.items() if MESH in vs.gateways and not vs.is_delegate}
    exact = [k for k, vs in mesh_vss.items() if fqdn in vs.fqdn_hosts]
    if exact:
        return exact, None
    best: tuple[int, Key] | None = None
    for k, vs in mesh_vss.items():
        for h in vs.fqdn_hosts:
            if h.startswith("*") and hosts.matches(h, fqdn) and (best is None or len(h) > best[0]):
                best = (len(h), k)
    return [], best[1] if best is not None else None


def materialize(
    faults: Sequence[Fault], resources: Iterable[Resource]
) -> tuple[list[Resource], dict[str, list[Target]]]:
    """The resources ``faults`` become over ``resources`` (the files and the applied layer,
    in order), and what each fault became, by name. Faults apply in the order they were added."""
    current = layer(as_registry(layer(resources), None))  # as config.mesh builds the mesh
    vss: dict[Key, VirtualService] = {
        (r.KIND, r.namespace, r.name): r for r in current if isinstance(r, VirtualService)
    }
    taken: set[Key] = {(r.KIND, r.namespace, r.name) for r in current}
    changed: dict[Key, VirtualService] = {}
    out: list[Resource] = []
    targets: dict[str, list[Target]] = {}
    for f in faults:
        if f.upstream is not None:
            out.append(f.upstream)
            targets[f.name] = [Target(f.upstream.KIND, f.namespace, f.name, "created")]
            continue
        assert f.fault is not None
        keys, wildcard = _serving(vss, f.fqdn)
        mine: list[Target] = []
        if keys:
            for k in keys:
                vs = vss[k]
                vss[k] = changed[k] = dataclasses.replace(
                    vs, http=with_fault(vs, f.fault, f.matches, f.route_name)
                )
                mine.append(Target(vs.KIND, vs.namespace, vs.name, "patched"))
        else:
            name = _free_name(f"fault-{f.name}", taken, f.namespace)
            fresh = _route_to(f, name, _ports(current, f.fqdn))
            if wildcard is not None:  # a copy of the wildcard VirtualService, for this host only
                wild = vss[wildcard]
                fresh = dataclasses.replace(
                    wild, metadata=fresh.metadata, hosts=fresh.hosts,
                    fqdn_hosts=fresh.fqdn_hosts, location=fresh.location,
                )  # fmt: skip
            key = (fresh.KIND, fresh.namespace, fresh.name)
            taken.add(key)
            vss[key] = changed[key] = dataclasses.replace(
                fresh, http=with_fault(fresh, f.fault, f.matches, f.route_name)
            )
            mine.append(Target(fresh.KIND, fresh.namespace, fresh.name, "created"))
        targets[f.name] = mine
    return [*changed.values(), *out], targets


def to_json(fault: Fault, targets: Sequence[Target]) -> dict[str, Any]:
    """A fault as ``GET /faults`` shows it: its definition and the resources it is active in."""
    return {**fault.definition, "resources": [t.to_dict() for t in targets]}


def missing_rule(fault: Fault, mesh: Mesh) -> str | None:
    """Why ``fault``'s ``routeName`` names no rule of the VirtualService serving its host (the
    configuration as it runs, earlier faults included), or ``None``."""
    if fault.route_name is None:
        return None
    vss = {(vs.KIND, vs.namespace, vs.name): vs for vs in mesh.virtual_services}
    keys, wildcard = _serving(vss, fault.fqdn)
    serving = [vss[k] for k in keys] or ([vss[wildcard]] if wildcard is not None else [])
    if not serving:
        return f"no VirtualService serves {fault.host}, so it has no rule {fault.route_name!r}"
    names = [r.name for vs in serving for r in vs.http if r.name]
    if fault.route_name in names:
        return None
    listed = f" (its named rules: {', '.join(names)})" if names else " (its rules have no name)"
    return (
        f"the VirtualService of {fault.host} has no rule named {fault.route_name!r}{listed}"
        f"{did_you_mean(fault.route_name, names)}"
    )
