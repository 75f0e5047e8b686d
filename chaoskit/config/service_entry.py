"""``ServiceEntry`` and ``WorkloadEntry``: chaoskit's service registry without Kubernetes.

A STATIC ServiceEntry with endpoints on 127.0.0.1 *is* a local service (docs/configuration.md §6):
its endpoint labels feed DestinationRule subsets and its per-port-name ``ports`` say where each
endpoint listens. A WorkloadEntry is a caller identity (``metadata.name`` + ``labels``), so its
address is optional here. Validation follows Istio's webhook (istio/istio
``pkg/config/validation/validation.go``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import posixpath
import re
from collections.abc import Mapping

from chaoskit.config.fields import UINT32_MAX, Fields, did_you_mean, type_name
from chaoskit.config.hosts import check_host, is_dns1123_label, is_ip, is_partial_wildcard
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.yamlsource import Location, YMap

#: Port protocols Istio understands (``protocol.Parse``), upper-cased. UDP is not supported.
PROTOCOLS = (
    "HTTP",
    "HTTPS",
    "GRPC",
    "GRPC-WEB",
    "HTTP2",
    "HTTP_PROXY",
    "MONGO",
    "MYSQL",
    "REDIS",
    "TCP",
    "TLS",
    "THRIFT",
)
_HTTP = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"})
_TLS = frozenset({"HTTPS", "TLS"})
_DYNAMIC_DNS_PROTOCOLS = ("HTTP", "TLS", "GRPC", "HTTP2")
LOCATIONS = ("MESH_EXTERNAL", "MESH_INTERNAL")
RESOLUTIONS = ("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS")
UNIX_PREFIX = "unix://"

_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def is_http_protocol(protocol: str | None) -> bool:
    return protocol in _HTTP


def is_tls_protocol(protocol: str | None) -> bool:
    return protocol in _TLS


@dataclasses.dataclass(frozen=True, slots=True)
class ServicePort:
    """``protocol`` is upper-cased; ``None`` when unset (Istio then sniffs the protocol)."""

    number: int
    name: str
    protocol: str | None = None
    target_port: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One ``endpoints[]`` entry (istio/api ``WorkloadEntry`` message)."""

    address: str | None = None
    ports: Mapping[str, int] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: As written; 0 means unset. See :attr:`effective_weight`.
    weight: int = 0
    locality: str | None = None
    network: str | None = None
    service_account: str | None = None

    @property
    def effective_weight(self) -> int:
        """Envoy treats an unset (0) load-balancing weight as 1."""
        return self.weight or 1

    @property
    def is_unix(self) -> bool:
        return self.address is not None and self.address.startswith(UNIX_PREFIX)

    def port_for(self, port: ServicePort) -> int:
        """Istio's precedence: endpoint ``ports[name]`` > ``targetPort`` > service port number."""
        if port.name in self.ports:
            return self.ports[port.name]
        return port.target_port or port.number


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceEntry(Resource):
    KIND = "ServiceEntry"

    hosts: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    #: The proto's ``location`` (``Resource.location`` is where the YAML stood).
    mesh_location: str = "MESH_EXTERNAL"
    resolution: str = "NONE"
    endpoints: tuple[Endpoint, ...] = ()
    #: ``workloadSelector.labels``; ``None`` when the block is absent.
    workload_selector: Mapping[str, str] | None = None
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()
    #: Generated from a Kubernetes ``Service`` (:mod:`.kubernetes`): Istio's registry prefers a
    #: Kubernetes Service to any ServiceEntry of the same host, and runs its ServiceEntry
    #: analyzers on written ServiceEntries only.
    from_kubernetes: bool = False

    def port(self, key: int | str) -> ServicePort | None:
        """The service port with this number or name."""
        return next((p for p in self.ports if key in (p.number, p.name)), None)


@dataclasses.dataclass(frozen=True, slots=True)
class WorkloadEntry(Resource):
    KIND = "WorkloadEntry"

    address: str | None = None
    ports: Mapping[str, int] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    weight: int = 0
    locality: str | None = None
    network: str | None = None
    service_account: str | None = None

    @property
    def endpoint(self) -> Endpoint:
        """This workload as an endpoint (what a ServiceEntry ``workloadSelector`` selects)."""
        return Endpoint(
            self.address,
            self.ports,
            self.labels,
            self.weight,
            self.locality,
            self.network,
            self.service_account,
        )


# -- shared readers (also used by gateway.py and sidecar.py) ---------------------------------


def str_items(f: Fields, key: str) -> list[tuple[str, str, Location]]:
    """``(path, text, location)`` per string of a list, so issues can name ``hosts[2]``."""
    out = []
    for path, item, loc in f.list(key):
        if isinstance(item, str):
            out.append((path, item, loc))
        else:
            f.ctx.issues.error(
                loc, f.ctx.resource, path, f"must be a string, not {type_name(item)}"
            )
    return out


def field_objs(f: Fields, key: str) -> list[Fields]:
    """``f.objs(key)``, typed: mypy reads ``Fields.objs``'s ``-> list[...]`` as the ``list`` method.

    Drop this for ``f.objs`` once fields.py annotates with ``builtins.list``.
    """
    out = []
    for path, item, loc in f.list(key):
        if (sub := Fields.of(item, path, f.ctx, loc)) is not None:
            out.append(sub)
    return out


def parse_protocol(f: Fields, key: str = "protocol", *, required: bool = False) -> str | None:
    """A port protocol, case-insensitive as in Istio, returned upper-cased. An empty string is
    unset (protocol sniffing), as in Istio's ``ValidateProtocol``, where a protocol is optional."""
    text = f.str(key, required=required)
    if text is None or (text == "" and not required):
        return None
    upper = text.upper()
    if upper == "UDP":
        f.error(key, "UDP is not supported")
        return None
    if upper not in PROTOCOLS:
        f.error(
            key,
            f'unsupported protocol "{text}"; use one of {", ".join(PROTOCOLS)}'
            f"{did_you_mean(upper, PROTOCOLS)}",
        )
        return None
    return upper


def check_labels(f: Fields, key: str, labels: Mapping[str, str]) -> None:
    """Kubernetes label syntax for keys (``[prefix/]name``) and values."""
    value = f.data.get(key)
    for k, v in labels.items():
        loc = value.loc_of(k) if isinstance(value, YMap) else f.loc(key)
        prefix, _, name = k.rpartition("/")
        bad_prefix = "/" in k and not (0 < len(prefix) <= 253 and _is_subdomain(prefix))
        path = f"{f.sub(key)}.{k}"
        if not name or len(name) > 63 or not _LABEL_NAME.match(name) or bad_prefix:
            f.ctx.issues.error(loc, f.ctx.resource, path, f"invalid label key {k!r}")
        elif len(v) > 63 or not _LABEL_NAME.match(v):
            f.ctx.issues.error(loc, f.ctx.resource, path, f"invalid label value {v!r}")


def _is_subdomain(name: str) -> bool:
    return len(name) <= 253 and all(is_dns1123_label(p) for p in name.split("."))


def _unix_problem(path: str) -> str | None:
    if not path:
        return "unix address must not be empty"
    if path.startswith("@"):  # abstract socket
        return None
    if not posixpath.isabs(path) or path.endswith("/"):
        return f"{path} is not an absolute path to a file"
    return None


# -- parsers ---------------------------------------------------------------------------------


def parse_endpoint(f: Fields, *, address_required: bool) -> Endpoint:
    """Read a ``WorkloadEntry`` message (an SE endpoint, or a WorkloadEntry's spec)."""
    address = f.str("address")
    ports: dict[str, int] = {}
    if (pf := f.obj("ports")) is not None:
        for name in list(pf.data):
            number = pf.int(name, minimum=1, maximum=65535)
            if not is_dns1123_label(name):
                pf.error(name, f"invalid port name {name!r} (DNS-1123 label)")
            elif number is not None:
                ports[name] = number
        pf.done()
    labels = f.str_map("labels")
    check_labels(f, "labels", labels)
    weight = f.int("weight", minimum=0, maximum=UINT32_MAX) or 0
    locality = f.str("locality")
    network = f.str("network")
    service_account = f.str("serviceAccount")
    f.done()
    if address is None and address_required:
        # validation.go validateWorkloadEntry: a network without an address only warns (the
        # endpoint is reached through that network's gateway, which chaoskit does not model).
        if network is None:
            f.error(None, '"address" is required')
        else:
            f.warn(None, f"address is unset with network {network!r}")
    if address is not None and "*" in address:
        f.error("address", f"address {address!r} must not contain a wildcard")
    elif address is not None and address.startswith(UNIX_PREFIX):
        if problem := _unix_problem(address.removeprefix(UNIX_PREFIX)):
            f.error("address", problem)
        if ports:
            f.error("ports", f"unix endpoint {address} must not include ports")
    elif address is not None and (problem := check_host(address, allow_wildcard=False)):
        f.error("address", problem)
    if locality is not None:
        parts = locality.split("/")
        if len(parts) > 3 or "" in parts:
            f.error("locality", f"locality {locality!r} must be region[/zone[/subzone]]")
    if service_account is not None and not _is_subdomain(service_account):
        f.error("serviceAccount", f"service account {service_account!r} is not a valid name")
    return Endpoint(address, ports, labels, weight, locality, network, service_account)


def _parse_ports(spec: Fields) -> tuple[ServicePort, ...]:
    out = []
    names: set[str] = set()
    numbers: set[int] = set()
    for pf in field_objs(spec, "ports"):
        number = pf.int("number", required=True, minimum=1, maximum=65535)
        name = pf.str("name", required=True)
        protocol = parse_protocol(pf)
        target = pf.int("targetPort", minimum=1, maximum=65535)
        pf.done()
        if name is not None and not is_dns1123_label(name):
            pf.error("name", f"invalid port name {name!r} (DNS-1123 label)")
        elif name is not None and name in names:
            pf.error("name", f'port name "{name}" is already defined')
        if number is not None and number in numbers:
            pf.error("number", f"port {number} is already defined")
        names.add(name or "")
        numbers.add(number or 0)
        if number is not None and name:
            out.append(ServicePort(number, name, protocol, target))
    return tuple(out)


def check_export_to(
    spec: Fields, *, service_entry: bool = False, selector: bool = False
) -> tuple[str, ...]:
    """``exportTo`` as Istio's ``validateExportTo`` (``pkg/config/validation/validation.go``).

    ``.`` stands for the resource's own namespace when looking for duplicates, ``~`` (none) is
    only for ServiceEntries, ``*`` and ``~`` stand alone, and a DestinationRule with a
    ``workloadSelector`` may only be exported to its own namespace.
    """
    namespace = spec.ctx.namespace
    items = str_items(spec, "exportTo")
    keys: set[str] = set()
    for path, e, loc in items:
        key = namespace if e == "." else e
        problem = None
        if key in keys:
            problem = (
                f"duplicate entries in exportTo: . and current namespace {namespace}"
                if key != e
                else f"duplicate entries in exportTo for entry {e}"
            )
        elif e == "~" and not service_entry:
            problem = "exportTo ~ (none) is not allowed for Istio configuration objects"
        elif e not in (".", "*", "~") and not is_dns1123_label(e):
            problem = f"{e!r}: only .,*, or a valid DNS 1123 label is allowed as exportTo entry"
        else:
            keys.add(key)
        if problem:
            spec.ctx.issues.error(loc, spec.ctx.resource, path, problem)
    if len(items) > 1 and "*" in keys:
        spec.error("exportTo", "cannot have both public (*) and non-public exportTo values")
    if len(items) > 1 and "~" in keys:
        spec.error("exportTo", "cannot export service entry to no one (~) and someone")
    if selector and keys and keys != {namespace}:
        spec.error(
            "exportTo",
            "destination rule with workload selector cannot have exportTo beyond current namespace",
        )
    return tuple(e for _, e, _ in items)


def parse_service_entry(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> ServiceEntry:
    """Read a ServiceEntry ``spec`` with Istio's single-resource rules."""
    issues, res = spec.ctx.issues, spec.ctx.resource
    host_items = str_items(spec, "hosts")
    addr_items = str_items(spec, "addresses")
    ports = _parse_ports(spec)
    mesh_location = spec.enum("location", LOCATIONS) or "MESH_EXTERNAL"
    resolution = spec.enum("resolution", RESOLUTIONS) or "NONE"
    ep_fields = field_objs(spec, "endpoints")
    endpoints = [parse_endpoint(ef, address_required=True) for ef in ep_fields]
    selector: dict[str, str] | None = None
    if (wf := spec.obj("workloadSelector")) is not None:
        selector = wf.str_map("labels")
        check_labels(wf, "labels", selector)
        wf.done()
    export_to = check_export_to(spec, service_entry=True)
    sans = spec.str_list("subjectAltNames")
    spec.done()

    if not host_items:
        spec.error("hosts", "service entry must have at least one host")
    problem: str | None
    for path, host, loc in host_items:
        if host == "*":
            problem = "invalid host *: a service entry cannot match every host"
        elif (problem := check_host(host, allow_partial=True)) is not None:
            pass
        elif resolution == "DYNAMIC_DNS" and not host.startswith("*."):
            problem = f"host {host!r} must be a wildcard (*.example.com) for resolution DYNAMIC_DNS"
        elif resolution in ("DNS", "DNS_ROUND_ROBIN") and not ep_fields and "*" in host:
            problem = (
                "hosts must be FQDN if no endpoints are provided for resolution mode " + resolution
            )
        if problem:
            issues.error(loc, res, path, problem)
        elif resolution != "DYNAMIC_DNS" and is_partial_wildcard(host):
            # validation.go ValidateServiceEntry: ValidatePartialWildCard is only a warning.
            issues.warning(loc, res, path, f"partial wildcard {host!r} not allowed")
    for path, addr, loc in addr_items:
        try:
            ipaddress.ip_network(addr, strict=False)
        except ValueError:
            issues.error(loc, res, path, f"{addr!r} is not an IP address or CIDR")
            continue
        if resolution == "DYNAMIC_DNS":
            issues.error(loc, res, path, "addresses cannot be set for resolution DYNAMIC_DNS")
        elif "/" in addr and resolution not in ("NONE", "STATIC"):
            issues.error(
                loc, res, path, "CIDR addresses are allowed only for NONE/STATIC resolution types"
            )

    if selector is not None and ep_fields:
        spec.error(None, "only one of workloadSelector or endpoints can be set")
    if resolution == "NONE" and ep_fields:
        spec.error("endpoints", "no endpoints should be provided for resolution type NONE")
    elif resolution == "DYNAMIC_DNS" and ep_fields:
        spec.error("endpoints", "endpoints cannot be set for resolution DYNAMIC_DNS")
    elif resolution == "DNS_ROUND_ROBIN" and len(ep_fields) > 1:
        spec.error(
            "endpoints", "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN"
        )
    elif resolution == "STATIC" and not ep_fields and selector is None:
        spec.warn(
            "endpoints",
            "STATIC service entry has no endpoints: every request gets 503 no healthy upstream",
        )
    port_names = {p.name for p in ports}
    for ef, ep in zip(ep_fields, endpoints, strict=True):
        where = ep.address
        if where is not None and resolution == "STATIC" and not (ep.is_unix or is_ip(where)):
            ef.error(
                "address",
                f"endpoint address {where!r} must be an IP address or a unix:// "
                "path for resolution STATIC",
            )
        elif where is not None and resolution in ("DNS", "DNS_ROUND_ROBIN") and ep.is_unix:
            ef.error("address", f"endpoint address {where!r} is not a valid FQDN or an IP address")
        if resolution != "NONE":
            for name in ep.ports:
                if name not in port_names:
                    ef.error(
                        "ports",
                        f'port name "{name}" is not defined in spec.ports'
                        f"{did_you_mean(name, port_names)}",
                    )
    if any(ep.is_unix for ep in endpoints) and len(ports) != 1:
        spec.error("ports", "exactly 1 service port required for unix endpoints")
    if resolution == "DYNAMIC_DNS":
        for i, p in enumerate(ports):
            if p.protocol not in _DYNAMIC_DNS_PROTOCOLS:
                spec.error(
                    "ports",
                    f"ports[{i}] ({p.name}): resolution DYNAMIC_DNS supports only "
                    f"{', '.join(_DYNAMIC_DNS_PROTOCOLS)} ports",
                )
    if (
        resolution != "NONE"
        and len(host_items) > 1
        and any(not (is_http_protocol(p.protocol) or is_tls_protocol(p.protocol)) for p in ports)
    ):
        spec.error("hosts", "multiple hosts provided with non-HTTP, non-TLS ports")

    return ServiceEntry(
        api_version=api_version,
        metadata=metadata,
        location=location,
        hosts=tuple(h for _, h, _ in host_items),
        addresses=tuple(a for _, a, _ in addr_items),
        ports=ports,
        mesh_location=mesh_location,
        resolution=resolution,
        endpoints=tuple(endpoints),
        workload_selector=selector,
        export_to=export_to,
        subject_alt_names=sans,
    )


def parse_workload_entry(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> WorkloadEntry:
    """Read a WorkloadEntry ``spec``; an address is optional for a caller identity."""
    ep = parse_endpoint(spec, address_required=False)
    return WorkloadEntry(
        api_version=api_version,
        metadata=metadata,
        location=location,
        address=ep.address,
        ports=ep.ports,
        labels=ep.labels,
        weight=ep.weight,
        locality=ep.locality,
        network=ep.network,
        service_account=ep.service_account,
    )
