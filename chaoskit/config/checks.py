"""Rules that need more than one resource: references, conflicts, and what they imply.

Istio accepts many of these configurations and fails at run time instead (a missing subset is a
503 ``NC`` on every request). chaoskit reports them before any traffic flows: errors for what
can only fail (or what chaoskit cannot enforce), warnings for what Istio applies and then
misbehaves on; those still load in the proxy, so the misbehaviour can be reproduced. Findings that
``istioctl analyze`` also reports carry its message code (istio/istio
``pkg/config/analysis/msg/messages.yaml``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from chaoskit.config import analyzers, hosts
from chaoskit.config.experiment import Experiment
from chaoskit.config.exports import is_public, scopes, scopes_overlap
from chaoskit.config.http_route import Destination
from chaoskit.config.issues import Issues
from chaoskit.config.lint import lint_virtual_service
from chaoskit.config.mesh import Mesh, Service, labels_match
from chaoskit.config.resource import Resource
from chaoskit.config.service_entry import ServiceEntry
from chaoskit.config.upstream_fault import check_protocol
from chaoskit.config.virtual_service import MESH, VirtualService
from chaoskit.config.yamlsource import Location

#: istioctl analyze message codes (istio/istio pkg/config/analysis/msg/messages.yaml).
REFERENCED_RESOURCE_NOT_FOUND = "IST0101"
CONFLICTING_MESH_GATEWAY_VS_HOSTS = "IST0109"
MULTIPLE_SIDECARS_WITHOUT_SELECTOR = "IST0111"
DESTINATION_PORT_SELECTOR_REQUIRED = "IST0112"
SUBSET_SELECTS_NO_ENDPOINT = "IST0173"
UNKNOWN_DESTINATION_RULE_HOST = "IST0174"


def check_mesh(mesh: Mesh, issues: Issues) -> None:
    """Cross-resource errors and warnings, then per-resource lints that need mesh defaults."""
    _check_virtual_services(mesh, issues)
    _check_destination_rules(mesh, issues)
    _check_upstream_faults(mesh, issues)
    _check_singletons(mesh, issues)
    _check_experiments(mesh, issues)
    for vs in mesh.virtual_services:
        lint_virtual_service(vs, mesh.defaults.route_timeout, mesh.defaults.retry, issues)
    analyzers.analyze(mesh, issues)


# -- destinations ---------------------------------------------------------------------------


def _is_cluster_local(fqdn: str) -> bool:
    return fqdn.endswith("." + hosts.CLUSTER_DOMAIN)


def check_destination(
    mesh: Mesh, dest: Destination, owner: Resource, path: str, loc: Location, issues: Issues
) -> None:
    """Is the host in the registry, the subset defined, the port unambiguous?"""
    svc = mesh.find_service(dest.fqdn)
    if svc is None:
        message = (
            f"host {dest.host!r} ({dest.fqdn}) is not in the registry: no ServiceEntry "
            "defines it, so Istio answers 503 NC (cluster not found)"
        )
        code = REFERENCED_RESOURCE_NOT_FOUND
        if _is_cluster_local(dest.fqdn) or not mesh.service_entries:
            issues.error(loc, owner.ref, f"{path}.host", message, code=code)
        else:
            issues.warning(
                loc, owner.ref, f"{path}.host", message + "; add a ServiceEntry for it", code=code
            )
        return
    if dest.subset is not None and dest.subset not in mesh.subsets_for(dest.fqdn):
        # Istio's webhook accepts this and Envoy answers 503 NC until a DestinationRule defines
        # the subset (the classic "VirtualService applied before its DestinationRule" outage):
        # a warning, so the proxy loads it and the outage can be reproduced.
        defined = sorted(mesh.subsets_for(dest.fqdn))
        known = f" (defined: {', '.join(defined)})" if defined else ""
        issues.warning(
            loc,
            owner.ref,
            f"{path}.subset",
            f"subset {dest.subset!r} is not defined by any DestinationRule for "
            f"{dest.fqdn}{known}; Istio answers 503 NC",
            code=REFERENCED_RESOURCE_NOT_FOUND,
        )
    seen = _seen_from(mesh, dest.fqdn, owner)
    if seen is None:
        where = ", ".join(_viewers(owner)) or "every namespace"
        issues.warning(
            loc,
            owner.ref,
            f"{path}.host",
            f"host {dest.host!r} ({dest.fqdn}) is defined by {svc.entry.ref}, which is not "
            f"exported to {where} (exportTo: {', '.join(svc.entry.export_to)}): callers there "
            "get 503 NC",
            code=REFERENCED_RESOURCE_NOT_FOUND,
        )
        return
    _check_gateway_views(mesh, dest, owner, path, loc, issues)
    _check_port(seen.entry, dest, owner, path, loc, issues)


def _check_gateway_views(
    mesh: Mesh, dest: Destination, owner: Resource, path: str, loc: Location, issues: Issues
) -> None:
    """A gateway routes with the services its own namespace sees (Istio's
    ``DefaultSidecarScopeForGateway``), which Istio's analyzer does not check: warn when the host
    is not exported to the namespace of a Gateway the VirtualService is bound to."""
    for ref in getattr(owner, "gateways", ()):
        gw = mesh.gateways_by_ref.get(ref)
        if gw is None or mesh.visible_service(dest.fqdn, gw.namespace) is not None:
            continue
        issues.warning(
            loc,
            owner.ref,
            f"{path}.host",
            f"host {dest.host!r} ({dest.fqdn}) is not exported to namespace {gw.namespace} of "
            f"{gw.ref}, which routes with this VirtualService: its requests get 503 NC",
        )
        return


def _viewers(owner: Resource) -> list[str]:
    """The namespaces whose proxies use ``owner``'s destinations, as Istio's analyzer reads them
    (``pkg/config/analysis/analyzers/util/service_lookup.go``, ``GetDestinationHost``): its own
    namespace, or each namespace its ``exportTo`` names (``*`` is handled by the caller)."""
    export_to: tuple[str, ...] = getattr(owner, "export_to", ())
    if not export_to:
        return [owner.namespace]
    return [owner.namespace if e == "." else e for e in export_to if e != "*"]


def _seen_from(mesh: Mesh, fqdn: str, owner: Resource) -> Service | None:
    """The definition of ``fqdn`` that ``owner``'s proxies see, or ``None`` when none is
    exported to them (with ``exportTo: ["*"]``, Istio's analyzer accepts public entries only)."""
    for namespace in _viewers(owner):
        if (svc := mesh.visible_service(fqdn, namespace)) is not None:
            return svc
    if "*" in getattr(owner, "export_to", ()):
        visible = mesh.visible_services(fqdn, owner.namespace)
        return next((s for s in visible if is_public(s.entry.export_to)), None)
    return None


def _check_port(
    se: ServiceEntry, dest: Destination, owner: Resource, path: str, loc: Location, issues: Issues
) -> None:
    numbers = [p.number for p in se.ports]
    if dest.port is None and len(numbers) > 1:
        issues.error(
            loc,
            owner.ref,
            f"{path}.port",
            f"{dest.host} has several ports ({', '.join(map(str, numbers))}); "
            "destination.port is required",
            code=DESTINATION_PORT_SELECTOR_REQUIRED,
        )
    elif dest.port is not None and numbers and dest.port not in numbers:
        issues.error(
            loc,
            owner.ref,
            f"{path}.port.number",
            f"{dest.host} has no port {dest.port} (ports: {', '.join(map(str, numbers))})",
            code=REFERENCED_RESOURCE_NOT_FOUND,
        )


def _destinations(vs: VirtualService) -> Iterable[tuple[str, Destination, Location]]:
    for r in vs.http:
        base = f"spec.http[{r.index}]"
        for i, d in enumerate(r.route):
            yield f"{base}.route[{i}].destination", d.destination, r.location
        for i, m in enumerate(r.mirrors):
            yield (
                f"{base}.mirror{'s' if len(r.mirrors) > 1 else ''}[{i}]",
                m.destination,
                r.location,
            )
    for kind, routes in (("tcp", vs.tcp), ("tls", vs.tls)):
        for l4 in routes:
            for i, d4 in enumerate(l4.route):
                yield f"spec.{kind}[{l4.index}].route[{i}].destination", d4.destination, l4.location


# -- virtual services -------------------------------------------------------------------------


def _check_virtual_services(mesh: Mesh, issues: Issues) -> None:
    # host → the mesh VirtualServices claiming it so far, with where each is seen
    claimed: dict[str, list[tuple[frozenset[str], VirtualService]]] = {}
    by_name = {(vs.namespace, vs.name): vs for vs in mesh.virtual_services}
    workload_labels = [w.labels for w in mesh.workload_entries]
    for vs in mesh.virtual_services:
        for path, dest, loc in _destinations(vs):
            check_destination(mesh, dest, vs, path, loc, issues)
        for gw in vs.gateways:
            if gw != MESH and gw not in mesh.gateways_by_ref:
                issues.error(
                    vs.location,
                    vs.ref,
                    "spec.gateways",
                    f"gateway {gw!r} does not exist (no Gateway {gw})",
                    code=REFERENCED_RESOURCE_NOT_FOUND,
                )
        if MESH in vs.gateways:
            seen_in = scopes(vs.export_to, vs.namespace)
            for h in vs.fqdn_hosts:
                rivals = claimed.setdefault(h, [])
                other = next((o for s, o in rivals if scopes_overlap(s, seen_in)), None)
                rivals.append((seen_in, vs))
                if other is not None:
                    issues.error(
                        vs.location,
                        vs.ref,
                        "spec.hosts",
                        f"host {h} is also routed by {other.ref} ({other.location}); on "
                        "sidecars only one VirtualService per host takes effect",
                        code=CONFLICTING_MESH_GATEWAY_VS_HOSTS,
                    )
        for r in vs.http:
            for i, m in enumerate(r.match):
                path = f"spec.http[{r.index}].match[{i}]"
                for gw in m.gateways:
                    if gw != MESH and gw not in mesh.gateways_by_ref:
                        issues.error(
                            r.location,
                            vs.ref,
                            f"{path}.gateways",
                            f"gateway {gw!r} does not exist",
                            code=REFERENCED_RESOURCE_NOT_FOUND,
                        )
                if m.source_labels and not any(
                    labels_match(m.source_labels, wl) for wl in workload_labels
                ):
                    issues.warning(
                        r.location,
                        vs.ref,
                        f"{path}.sourceLabels",
                        "no WorkloadEntry has these labels: no caller can match this rule",
                    )
            if r.delegate is not None:
                target = by_name.get((r.delegate.namespace, r.delegate.name))
                if target is None:
                    issues.error(
                        r.location,
                        vs.ref,
                        f"spec.http[{r.index}].delegate",
                        f"delegate VirtualService {r.delegate.namespace}/{r.delegate.name} "
                        "does not exist",
                    )
                elif not target.is_delegate:
                    issues.error(
                        r.location,
                        vs.ref,
                        f"spec.http[{r.index}].delegate",
                        f"{target.ref} has hosts, so it cannot be a delegate",
                    )


# -- destination rules ------------------------------------------------------------------------


def _check_destination_rules(mesh: Mesh, issues: Issues) -> None:
    routed = {d.fqdn for vs in mesh.virtual_services for _, d, _ in _destinations(vs)}
    for host, rules in mesh.rules_by_host.items():
        with_policy = [dr for dr in rules if dr.traffic_policy is not None]
        for dr in with_policy[1:]:
            issues.warning(
                dr.location,
                dr.ref,
                "spec.trafficPolicy",
                f"ignored: {with_policy[0].ref} also sets a top-level trafficPolicy for "
                f"{host}, and Istio keeps only the first",
            )
    for dr in mesh.destination_rules:
        svc = mesh.find_service(dr.fqdn_host) if not dr.fqdn_host.startswith("*") else None
        if svc is None and not dr.fqdn_host.startswith("*"):
            if dr.fqdn_host not in routed:
                issues.warning(
                    dr.location,
                    dr.ref,
                    "spec.host",
                    f"nothing routes to {dr.fqdn_host}: no ServiceEntry defines it and no "
                    "VirtualService sends traffic there",
                    code=UNKNOWN_DESTINATION_RULE_HOST,
                )
            continue
        if svc is None:
            continue
        endpoints = list(svc.entry.endpoints)
        _check_outlier(
            dr.ref, dr.location, "spec.trafficPolicy", dr.traffic_policy, len(endpoints), issues
        )
        for i, subset in enumerate(dr.subsets):
            members = [e for e in endpoints if labels_match(subset.labels, e.labels)]
            path = f"spec.subsets[{i}]"
            if endpoints and not members and svc.entry.resolution in ("STATIC", "DNS"):
                issues.warning(
                    dr.location,
                    dr.ref,
                    f"{path}.labels",
                    f"subset {subset.name!r} selects no endpoint of {svc.host}: its "
                    "requests get 503 no healthy upstream",
                    code=SUBSET_SELECTS_NO_ENDPOINT,
                )
            policy = subset.traffic_policy if subset.traffic_policy is not None else None
            if policy is not None and policy.outlier_detection is not None:
                _check_outlier(
                    dr.ref, dr.location, f"{path}.trafficPolicy", policy, len(members), issues
                )
            elif policy is None or policy.outlier_detection is None:
                top = dr.traffic_policy
                if (
                    top is not None
                    and top.outlier_detection is not None
                    and len(members) != len(endpoints)
                ):
                    _check_outlier(
                        dr.ref,
                        dr.location,
                        "spec.trafficPolicy",
                        top,
                        len(members),
                        issues,
                        subset=subset.name,
                    )


def _check_outlier(
    ref: str,
    loc: Location,
    path: str,
    policy: object,
    n_endpoints: int,
    issues: Issues,
    *,
    subset: str | None = None,
) -> None:
    od = getattr(policy, "outlier_detection", None) if policy is not None else None
    if od is None or n_endpoints <= 0:
        return
    pct = od.effective_max_ejection_percent
    if 100 / n_endpoints > pct:
        where = f" in subset {subset!r}" if subset else ""
        issues.warning(
            loc,
            ref,
            f"{path}.outlierDetection.maxEjectionPercent",
            f"can never eject: with {n_endpoints} endpoint{'s' if n_endpoints != 1 else ''}"
            f"{where}, ejecting one is {100 / n_endpoints:.0f}% > maxEjectionPercent {pct:g}% "
            "(Envoy >= 1.27 enforces it strictly); set maxEjectionPercent: 100",
        )


# -- chaoskit kinds and singletons ------------------------------------------------------------


def _check_upstream_faults(mesh: Mesh, issues: Issues) -> None:
    for uf in mesh.upstream_faults:
        svc = mesh.find_service(uf.fqdn)
        if svc is None:
            issues.error(
                uf.location,
                uf.ref,
                "spec.host",
                f"host {uf.host!r} ({uf.fqdn}) is not in the registry: the fault could never fire",
            )
            continue
        check_protocol(uf, svc.entry, issues)
        subsets = mesh.subsets_for(uf.fqdn)
        if uf.subset is not None and uf.subset not in subsets:
            issues.error(
                uf.location,
                uf.ref,
                "spec.subset",
                f"subset {uf.subset!r} is not defined by any DestinationRule for {uf.fqdn}",
            )
        eps = svc.entry.endpoints
        if (
            uf.endpoint_labels
            and eps
            and not any(labels_match(uf.endpoint_labels, e.labels) for e in eps)
        ):
            issues.warning(
                uf.location,
                uf.ref,
                "spec.endpointLabels",
                f"no endpoint of {svc.host} has these labels: the fault never fires",
            )


def _check_singletons(mesh: Mesh, issues: Issues) -> None:
    for mc in mesh.mesh_configs[1:]:
        issues.error(
            mc.location,
            mc.ref,
            "metadata.name",
            f"only one MeshConfig may be given ({mesh.mesh_configs[0].ref} is used)",
        )
    seen: dict[str, str] = {}
    for sc in mesh.sidecars:
        if sc.workload_selector:
            continue
        if sc.namespace in seen:
            issues.error(
                sc.location,
                sc.ref,
                "spec.workloadSelector",
                f"namespace {sc.namespace} already has a Sidecar without workloadSelector "
                f"({seen[sc.namespace]}); which one applies would be undefined",
                code=MULTIPLE_SIDECARS_WITHOUT_SELECTOR,
            )
        else:
            seen[sc.namespace] = sc.ref


def _check_experiments(mesh: Mesh, issues: Issues) -> None:
    """An Experiment's files must exist (paths are relative to the experiment's own file)."""
    for res in mesh.resources:
        if not isinstance(res, Experiment):
            continue
        folder = Path(res.location.file).parent
        for i, m in enumerate(res.mesh):
            if not (folder / m).exists():
                issues.error(
                    res.location,
                    res.ref,
                    f"spec.mesh[{i}]",
                    f"{m!r} does not exist (relative to {folder})",
                )
        for phase in res.faults:
            for f in phase.files:
                if not (folder / f).exists():
                    issues.error(
                        res.location,
                        res.ref,
                        f"spec.faults[{phase.name}].files",
                        f"{f!r} does not exist (relative to {folder})",
                    )
