"""Faults by name, Toxiproxy-style, for the admin API's ``/faults`` endpoints: pure logic.

A fault is a small JSON/YAML body — ``{"name": "slow-ratings", "host": "ratings", "delay":
{"fixedDelay": "2s", "percentage": 50}}`` — of one of two types:

- ``route`` (the default): an Istio ``HTTPFaultInjection`` (``delay``/``abort``, optional
  ``match``, optional ``routeName``: only the rule of that ``name``) on the mesh VirtualService
  of ``host``. It sits before the router, so its aborts
  are never retried, exactly as in Istio.
- ``upstream``: an ``UpstreamFault`` whose ``spec`` is the body (below the retry layer).

Every fault becomes resources of the runtime layer (:mod:`chaoskit.proxy.admin_changes`), so it
is validated, swapped in and re-applied over file reloads exactly as ``/config/apply`` is.

How a route fault joins the configuration — the rule Istio imposes: a host has at most one
mesh VirtualService (two are a conflict whose outcome is undefined, ``istioctl analyze``
IST0109, istio/istio ``pkg/config/analysis/analyzers/virtualservice/
conflictingmeshgatewayhosts.go``), and a route rule holds one ``fault``. So the fault is never a
second VirtualService for a host that has one; it is **spliced into the existing one**, as a user
editing it in a cluster would: every forwarding rule gets the fault (replacing a fault the rule
had), or, with ``match``, a copy of each forwarding rule narrowed by the match and carrying the
fault goes in front of it (:func:`with_fault`, shared with ``chaos.route_fault``). A host served
only by a wildcard VirtualService gets a copy of it for that one host (the exact host is more
specific, so it takes precedence, with the same rules); a host with no VirtualService gets one
that routes to it. Removing the fault brings the original back, and a file reload re-splices it
into the VirtualService as the files now define it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaoskit.config import hosts
from chaoskit.config.fields import Context, Fields, did_you_mean
from chaoskit.config.http_route import HTTPFaultInjection, HTTPRoute, parse_fault
from chaoskit.config.issues import Issues
from chaoskit.config.kubernetes import as_registry
from chaoskit.config.loader import load_text
from chaoskit.config.match import HTTPMatchRequest, parse_match_request
from chaoskit.config.mesh import Mesh, layer
from chaoskit.config.resource import CHAOSKIT_API, Resource, parse_metadata
from chaoskit.config.service_entry import ServiceEntry
from chaoskit.config.upstream_fault import UpstreamFault, parse_upstream_fault
from chaoskit.config.virtual_service import MESH, VirtualService
from chaoskit.config.yamlsource import Location, YamlError, YMap, parse_documents

ROUTE = "route"
UPSTREAM = "upstream"
TYPES = (ROUTE, UPSTREAM)
ISTIO_API = "networking.istio.io/v1"

#: Body fields every fault has; the rest belongs to its type.
COMMON_FIELDS = ("name", "namespace", "type", "host")
#: UpstreamFault fields a ``route`` fault cannot have: named in the message, not just "unknown".
UPSTREAM_ONLY = (
    "subset", "endpoint", "endpointLabels", "reset", "hang", "slowBody", "truncateBody",
    "corruptBody", "percentage", "firstN", "nth", "sequence", "repeat", "window",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class Fault:
    """One named fault: its definition as given, and what it was read into."""

    name: str
    namespace: str
    type: str
    host: str
    #: The body as plain JSON data (with ``name``, ``namespace`` and ``type`` filled in): what
    #: ``GET /faults`` shows and what decides whether a ``PUT`` changes anything.
    definition: Mapping[str, Any]
    location: Location
    #: where each field of the body was written, for messages found after parsing
    key_locs: Mapping[str, Location]
    upstream: UpstreamFault | None = None
    fault: HTTPFaultInjection | None = None
    matches: tuple[HTTPMatchRequest, ...] = ()
    #: only the rule of this name (Istio's ``HTTPRoute.name``) gets the fault
    route_name: str | None = None

    @property
    def fqdn(self) -> str:
        return hosts.expand(self.host, self.namespace)

    def loc(self, key: str) -> Location:
        return self.key_locs.get(key, self.location)


def _plain(value: Any) -> Any:
    """YAML data (``YMap``/``YList``) as plain JSON data."""
    return json.loads(json.dumps(value))


def _percentage_shorthand(body: YMap) -> None:
    """``percentage: 50`` is short for Istio's ``percentage: {value: 50}``, and a route fault's
    ``delay``/``abort`` without a percentage fire always (like ``chaos.route_fault`` and an
    UpstreamFault; a VirtualService written by hand keeps Istio's 0 %)."""

    def fix(holder: YMap, default: float | None) -> None:
        value = holder.get("percentage")
        if isinstance(value, int | float) and not isinstance(value, bool):
            boxed = YMap(holder.loc_of("percentage"))
            boxed["value"] = value
            holder["percentage"] = boxed
        elif "percentage" not in holder and "percent" not in holder and default is not None:
            boxed = YMap(holder.loc)
            boxed["value"] = default
            holder["percentage"] = boxed
            holder.key_locs["percentage"] = holder.loc

    if body.get("type", ROUTE) == ROUTE:
        for key in ("delay", "abort"):
            if isinstance(part := body.get(key), YMap):
                fix(part, 100.0)
    else:
        fix(body, None)


def parse_fault_body(
    text: str, file: str, url_name: str | None = None
) -> tuple[Fault | None, Issues]:
    """Read one fault from a request body; every problem becomes a located issue (``file`` is
    the pseudo file of the request, e.g. ``<admin:PUT /faults/slow-ratings>``)."""
    issues = Issues()
    try:
        docs = parse_documents(text, file)
    except YamlError as e:
        issues.error(e.location, "", "", e.message)
        return None, issues
    if len(docs) != 1 or not isinstance(docs[0].value, YMap):
        where = docs[1].loc if len(docs) > 1 else Location(file, 1)
        issues.error(where, "", "", "the body must be one mapping (a fault: name, host, ...)")
        return None, issues
    body: YMap = docs[0].value
    if url_name is not None and "name" not in body:
        body["name"] = url_name
    ctx = Context(issues, resource=f"fault/{body.get('name', url_name or '?')}")
    meta_map = YMap(body.loc)
    for key in ("name", "namespace"):
        if key in body:
            meta_map[key] = body[key]
            meta_map.key_locs[key] = body.loc_of(key)
    metadata = parse_metadata(Fields(meta_map, "", ctx), fallback_name="")
    if url_name is not None and metadata.name and metadata.name != url_name:
        issues.error(
            body.loc_of("name"), ctx.resource, "name",
            f"the body names {metadata.name!r} but the URL {url_name!r}",
        )  # fmt: skip
    ctx.namespace = metadata.namespace
    given = _plain(body)  # before the shorthands are expanded
    f = Fields(body, "", ctx)
    f.accept("name", "namespace")
    kind = f.enum("type", TYPES) or ROUTE
    _percentage_shorthand(body)
    if kind == UPSTREAM:
        upstream = parse_upstream_fault(f, CHAOSKIT_API, metadata, body.loc)
        host, fault, matches, route_name = upstream.host, None, upstream.match, None
    else:
        upstream = None
        route_name = f.str("routeName")
        host = f.str("host", required=True) or ""
        if host and (problem := hosts.check_host(host)):
            f.error("host", problem)
        matches = tuple(parse_match_request(mf) for mf in f.objs("match"))
        for key in UPSTREAM_ONLY:
            if key in body:
                f.accept(key)
                f.error(key, f'"{key}" is an UpstreamFault field: add "type": "upstream"')
        fault = parse_fault(f)  # reads delay/abort, reports any other field as unknown
    if issues.errors or not metadata.name:
        return None, issues
    definition = {"name": metadata.name, "namespace": metadata.namespace, "type": kind}
    definition.update((k, v) for k, v in given.items() if k not in definition)
    return (
        Fault(metadata.name, metadata.namespace, kind, host, definition, body.loc,
              dict(body.key_locs), upstream=upstream, fault=fault, matches=matches,
              route_name=route_name),
        issues,
    )  # fmt: skip


def unknown_host(fault: Fault, mesh: Mesh) -> str | None:
    """Why ``fault``'s host cannot be faulted in ``mesh`` (with a did-you-mean), or ``None``.

    A host is known when the registry has it, or (route faults) when a mesh VirtualService
    serves it (an external host under ALLOW_ANY)."""
    fqdn = fault.fqdn
    if mesh.find_service(fqdn) is not None:
        return None
    if fault.type == ROUTE and any(
        MESH in vs.gateways and fqdn in vs.fqdn_hosts for vs in mesh.virtual_services
    ):
        return None
    known: list[str] = []
    for name in mesh.services:
        known.extend(hosts.short_forms(name, fault.namespace))
    return (
        f"host {fault.host!r} ({fqdn}) is not in the registry: no ServiceEntry defines it"
        f"{did_you_mean(fault.host, known)}"
    )


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


def conflict(fault: Fault, others: Iterable[Fault]) -> Fault | None:
    """Another route fault on the same host and match: a rule holds one fault, so the later
    would silently replace the earlier one; refused instead (change it with ``PUT``)."""
    if fault.type != ROUTE:
        return None
    for other in others:
        if (
            other.name != fault.name
            and other.type == ROUTE
            and other.fqdn == fault.fqdn
            and other.definition.get("match") == fault.definition.get("match")
            and other.route_name == fault.route_name
        ):
            return other
    return None
