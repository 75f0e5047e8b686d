"""``VirtualService``: which rules apply to which hosts, for which gateways."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

from chaoskit.config.fields import UINT32_MAX, Fields
from chaoskit.config.hosts import (
    check_gateway_vs_host,
    check_host,
    expand,
    is_dns1123_label,
    is_ip,
    matches,
    overlaps,
)
from chaoskit.config.http_route import Destination, HTTPRoute, parse_destination, parse_http_route
from chaoskit.config.match import is_jwt_claim_key
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.service_entry import check_export_to
from chaoskit.config.yamlsource import Location

#: The reserved gateway name for "all sidecars".
MESH = "mesh"


@dataclasses.dataclass(frozen=True, slots=True)
class RouteDestination:
    """A weighted destination of a TCP or TLS rule (chaoskit validates these, see docs)."""

    destination: Destination
    weight: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class L4Match:
    """One ``match[]`` entry of a ``tcp[]`` or ``tls[]`` rule (istio/api ``L4MatchAttributes``,
    ``TLSMatchAttributes``), kept whole: the TCP router applies it per entry, the match analysis
    (IST0130/IST0131) compares entries.

    All its fields are selectors Istio evaluates when it builds a proxy's listeners (istio/istio
    ``pilot/pkg/networking/core/tls.go``, ``matchTCP``), except ``destination_subnets``, which
    Envoy matches on the destination IP of each connection. ``gateways`` is normalised to
    ``namespace/name`` or ``mesh``; ``source_labels`` is sorted pairs, so entries compare and
    hash (:attr:`labels` is the mapping).
    """

    port: int | None = None
    sni_hosts: tuple[str, ...] = ()
    destination_subnets: tuple[str, ...] = ()
    source_labels: tuple[tuple[str, str], ...] = ()
    source_namespace: str | None = None
    gateways: tuple[str, ...] = ()

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.source_labels)


@dataclasses.dataclass(frozen=True, slots=True)
class L4Route:
    """One ``tcp[]`` or ``tls[]`` rule: ``sni_hosts`` is only set for TLS; ``match`` holds
    every entry (chaoskit routes TCP connections, TLS rules are validated only)."""

    index: int
    location: Location
    route: tuple[RouteDestination, ...]
    ports: tuple[int, ...] = ()
    sni_hosts: tuple[str, ...] = ()
    match: tuple[L4Match, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class VirtualService(Resource):
    KIND = "VirtualService"

    hosts: tuple[str, ...] = ()
    #: ``hosts`` expanded to fully qualified names (istio/istio ``ResolveShortnameToFQDN``).
    fqdn_hosts: tuple[str, ...] = ()
    #: Normalised to ``namespace/name``, or ``mesh``; omitted in YAML means ``("mesh",)``.
    gateways: tuple[str, ...] = (MESH,)
    http: tuple[HTTPRoute, ...] = ()
    tcp: tuple[L4Route, ...] = ()
    tls: tuple[L4Route, ...] = ()
    export_to: tuple[str, ...] = ()

    @property
    def is_delegate(self) -> bool:
        return not self.hosts


def gateway_normalizer(namespace: str) -> Callable[[Fields, str, str], str | None]:
    """A function that turns a written gateway name into ``ns/name`` (or ``mesh``)."""

    def normalize(f: Fields, key: str, name: str) -> str | None:
        if name == MESH:
            return MESH
        if "/" in name:
            ns, _, gw = name.partition("/")
            if not (is_dns1123_label(ns) and is_dns1123_label(gw)):
                f.error(key, f"invalid gateway name {name!r} (expected namespace/name)")
                return None
            return name
        if "." in name:
            # Legacy FQDN form: name.namespace.svc.cluster.local
            parts = name.split(".")
            f.warn(
                key,
                f"gateway name {name!r} uses the deprecated FQDN form; write {parts[1]}/{parts[0]}",
            )
            return f"{parts[1]}/{parts[0]}"
        if not is_dns1123_label(name):
            f.error(key, f"invalid gateway name {name!r}")
            return None
        return f"{namespace}/{name}"

    return normalize


def _check_sni_host(mf: Fields, sni: str, hosts: tuple[str, ...], *, gateway: bool) -> None:
    """``validateSniHost``: a valid (gateway) domain that is a subset of a VirtualService host.

    An IP address only warns (it goes against the SNI spec). ``gateway`` is Istio's
    ``isGateway``, true unless ``mesh`` is listed (so also when ``gateways`` is empty).
    """
    if is_ip(sni):
        mf.warn("sniHosts", f"using an IP address ({sni!r}) goes against SNI spec")
        return
    problem = (
        check_gateway_vs_host(sni, sni=True) if gateway else check_host(sni, allow_partial=True)
    )
    if problem is not None:
        mf.error("sniHosts", problem)
        return
    if not any(matches(h.lower(), sni.lower()) for h in hosts):
        mf.error(
            "sniHosts",
            f"SNI host {sni!r} is not a compatible subset of any of the virtual service hosts: "
            f"[{', '.join(hosts)}]",
        )


def _is_subnet(text: str) -> bool:
    """An IP address or a CIDR block (istio/istio ``ValidateIPSubnet``)."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _l4_match(
    mf: Fields,
    port: int | None,
    sni_hosts: tuple[str, ...],
    normalize: Callable[[Fields, str, str], str | None],
) -> L4Match:
    """The selectors of one ``tcp[].match[]`` entry; subnets validated as Istio's
    ``ValidateIPSubnet`` does (an address or a CIDR)."""
    subnets = mf.str_list("destinationSubnets")
    for subnet in subnets:
        if not _is_subnet(subnet):
            mf.error("destinationSubnets", f"{subnet!r} is not an IP address or a CIDR block")
    gateways = tuple(
        g for g in (normalize(mf, "gateways", g) for g in mf.str_list("gateways")) if g
    )
    return L4Match(
        port=port,
        sni_hosts=sni_hosts,
        source_labels=tuple(sorted(mf.str_map("sourceLabels").items())),
        source_namespace=mf.str("sourceNamespace"),
        gateways=gateways,
        destination_subnets=subnets,
    )


def _l4_routes(
    spec: Fields,
    key: str,
    hosts: tuple[str, ...],
    gateway: bool,
    normalize: Callable[[Fields, str, str], str | None],
) -> tuple[L4Route, ...]:
    out = []
    for i, rf in enumerate(spec.objs(key)):
        ports: list[int] = []
        sni: list[str] = []
        matches: list[L4Match] = []
        for mf in rf.objs("match"):
            p = mf.int("port", minimum=1, maximum=65535)
            if p is not None:
                ports.append(p)
            names: list[str] = []
            if key == "tls":
                names = list(mf.str_list("sniHosts", required=True))
                for name in names:
                    _check_sni_host(mf, name, hosts, gateway=gateway)
                sni.extend(names)
            matches.append(_l4_match(mf, p, tuple(names), normalize))
            mf.accept(
                "destinationSubnets", "sourceLabels", "gateways", "sourceNamespace", "sniHosts"
            )
            mf.done()
        if key == "tls" and not rf.has("match"):
            rf.error(None, "TLS route must have at least one match condition")
        dests = []
        for df in rf.objs("route", required=True):
            dest_f = df.obj("destination", required=True)
            dest = parse_destination(dest_f) if dest_f is not None else None
            weight = df.int("weight", minimum=0, maximum=UINT32_MAX) or 0
            df.done()
            if dest is not None:
                dests.append(RouteDestination(dest, weight))
        if len(rf.data.get("route") or ()) > 1 and not any(d.weight for d in dests):
            rf.error("route", "total destination weight = 0")  # validateRouteDestinations
        rf.done()
        out.append(L4Route(i, rf.loc(), tuple(dests), tuple(ports), tuple(sni), tuple(matches)))
    return tuple(out)


def _check_jwt_claim_routes(spec: Fields, http: tuple[HTTPRoute, ...]) -> None:
    """JWT-claim header matches need a gateway (``ValidateVirtualService``)."""
    for r in http:
        for j, m in enumerate(r.match):
            for key in ("headers", "without_headers"):
                for name in getattr(m, key):
                    if is_jwt_claim_key(name):
                        spec.ctx.issues.error(
                            r.location,
                            spec.ctx.resource,
                            f"spec.http[{r.index}].match[{j}]",
                            f"JWT claim based routing (key: {name}) is only supported for "
                            "gateway, found no gateways",
                        )


def parse_virtual_service(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> VirtualService:
    """Read a VirtualService ``spec`` (metadata already parsed by the loader)."""
    ns = metadata.namespace
    normalize = gateway_normalizer(ns)
    hosts = spec.str_list("hosts")
    gateways_raw = spec.str_list("gateways")
    gateways = tuple(g for g in (normalize(spec, "gateways", g) for g in gateways_raw) if g)
    delegate = not spec.has("hosts")

    bound_to_mesh = not gateways_raw or MESH in gateways
    # Istio's isGateway: gateways listed and none of them is "mesh".
    on_gateway = bool(gateways_raw) and MESH not in gateways
    has_sni = any(
        isinstance(m, dict) and m.get("sniHosts")
        for t in spec.data.get("tls") or ()
        if isinstance(t, dict)
        for m in t.get("match") or ()
    )
    for h in hosts:
        problem = (
            check_gateway_vs_host(h, sni=has_sni)
            if on_gateway
            else check_host(h, allow_partial=True)
        )
        if problem and not is_ip(h):
            spec.error("hosts", problem)
        elif h == "*" and bound_to_mesh:
            spec.error(
                "hosts",
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            )
    fq = tuple(expand(h, ns) for h in hosts)
    for i, a in enumerate(fq):
        for b in fq[i + 1 :]:
            if overlaps(a, b):
                spec.error("hosts", f"duplicate hosts in virtual service: {a} & {b}")

    http = tuple(parse_http_route(rf, i, normalize) for i, rf in enumerate(spec.objs("http")))
    tcp = _l4_routes(spec, "tcp", hosts, on_gateway, normalize)
    tls = _l4_routes(spec, "tls", hosts, not gateways_raw or on_gateway, normalize)
    export_to = check_export_to(spec)
    if not on_gateway:
        _check_jwt_claim_routes(spec, http)
    spec.done()

    if not any(spec.data.get(k) for k in ("http", "tcp", "tls")):
        spec.error(None, "http, tcp or tls must be provided in virtual service")
    if delegate:
        if gateways_raw:
            spec.error("gateways", "delegate virtual service must not have gateways")
        if tcp or tls:
            spec.error(None, "delegate virtual service must not have tcp or tls routes")
        for r in http:
            if r.delegate is not None:
                spec.ctx.issues.error(
                    r.location,
                    spec.ctx.resource,
                    f"spec.http[{r.index}].delegate",
                    "a delegate virtual service cannot delegate further",
                )
    for r in http:
        if r.delegate is not None and not gateways_raw:
            spec.ctx.issues.warning(
                r.location,
                spec.ctx.resource,
                f"spec.http[{r.index}].delegate",
                "delegation only takes effect on gateways",
            )
    return VirtualService(
        api_version=api_version,
        metadata=metadata,
        location=location,
        hosts=hosts,
        fqdn_hosts=fq,
        gateways=gateways or (MESH,),
        http=http,
        tcp=tcp,
        tls=tls,
        export_to=export_to,
    )
