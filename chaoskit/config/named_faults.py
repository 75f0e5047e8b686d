"""Faults by name, Toxiproxy-style, for the admin API's ``/faults`` endpoints: what a fault
body says (pure). How a fault joins the configuration is :mod:`chaoskit.config.fault_splice`.

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
fault goes in front of it (:func:`~chaoskit.config.fault_splice.with_fault`, shared with
``chaos.route_fault``). A host served
only by a wildcard VirtualService gets a copy of it for that one host (the exact host is more
specific, so it takes precedence, with the same rules); a host with no VirtualService gets one
that routes to it. Removing the fault brings the original back, and a file reload re-splices it
into the VirtualService as the files now define it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from chaoskit.config import hosts
from chaoskit.config.fields import Context, Fields, did_you_mean
from chaoskit.config.http_route import HTTPFaultInjection, parse_fault
from chaoskit.config.issues import Issues
from chaoskit.config.match import HTTPMatchRequest, parse_match_request
from chaoskit.config.mesh import Mesh
from chaoskit.config.resource import CHAOSKIT_API, parse_metadata
from chaoskit.config.upstream_fault import UpstreamFault, parse_upstream_fault
from chaoskit.config.virtual_service import MESH
from chaoskit.config.yamlsource import Location, YamlError, YMap, parse_documents
from chaoskit.faults.actions import ACTIONS

ROUTE = "route"
UPSTREAM = "upstream"
TYPES = (ROUTE, UPSTREAM)
ISTIO_API = "networking.istio.io/v1"

#: Body fields every fault has; the rest belongs to its type.
COMMON_FIELDS = ("name", "namespace", "type", "host")
#: UpstreamFault fields a ``route`` fault cannot have: named in the message, not just "unknown".
UPSTREAM_ONLY = (
    "subset", "endpoint", "endpointLabels",
    *(a.name for a in ACTIONS if a.name not in ("delay", "abort")),
    "percentage", "firstN", "nth", "sequence", "repeat", "window",
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
