"""``Sidecar``: which hosts a workload's proxy sees, and what happens to the rest.

Two things matter to chaoskit (istio/api ``networking/v1alpha3/sidecar.proto``, istio/istio
``pilot/pkg/model/sidecar.go``): ``egress[].hosts`` scope which services a caller imports
(:func:`imports_host`), and ``outboundTrafficPolicy`` decides whether unknown hosts pass through
(ALLOW_ANY) or get a 502 (REGISTRY_ONLY). The gotcha is kept exactly: a block absent means "mesh
default", a block present without ``mode`` means REGISTRY_ONLY (the enum's zero).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from chaoskit.config.destination_rule import parse_connection_pool
from chaoskit.config.fields import Fields
from chaoskit.config.gateway import NamespacedHost, check_bind, parse_server_tls
from chaoskit.config.hosts import check_host, is_dns1123_label, overlaps
from chaoskit.config.http_route import Destination, parse_destination
from chaoskit.config.mesh_config import ALLOW_ANY, REGISTRY_ONLY
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.service_entry import (
    UNIX_PREFIX,
    check_labels,
    field_objs,
    is_http_protocol,
    is_tls_protocol,
    parse_protocol,
    str_items,
)
from chaoskit.config.yamlsource import Location

CAPTURE_MODES = ("DEFAULT", "IPTABLES", "NONE")
#: Hosts Istio allows in an ingress ``defaultEndpoint`` (``ValidateSidecar``).
_ENDPOINT_HOSTS = ("", "127.0.0.1", "0.0.0.0", "::1", "::")
#: Server TLS fields a Sidecar ingress listener may not set (``ValidateSidecar``).
_INGRESS_TLS_FORBIDDEN = {
    "subjectAltNames": "subjectAltNames is not supported in ingress tls",
    "httpsRedirect": "httpsRedirect is not supported",
    "credentialName": "credentialName is not currently supported",
    "credentialNames": "credentialNames is not currently supported",
    "tlsCertificates": "tlsCertificates is not currently supported",
}


@dataclasses.dataclass(frozen=True, slots=True)
class SidecarPort:
    number: int
    protocol: str | None = None
    name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class IstioEgressListener:
    """``port`` is ``None`` for the catch-all listener (which must come last)."""

    index: int
    location: Location
    port: SidecarPort | None = None
    bind: str | None = None
    capture_mode: str = "DEFAULT"
    hosts: tuple[NamespacedHost, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class IstioIngressListener:
    """Accepted and validated; chaoskit does not proxy inbound traffic."""

    index: int
    location: Location
    port: SidecarPort | None = None
    bind: str | None = None
    capture_mode: str = "DEFAULT"
    default_endpoint: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class OutboundTrafficPolicy:
    """``mode`` defaults to REGISTRY_ONLY: Istio's zero value when the block has no mode."""

    mode: str = REGISTRY_ONLY
    egress_proxy: Destination | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Sidecar(Resource):
    KIND = "Sidecar"

    #: ``workloadSelector.labels``; ``None`` (or empty) = the namespace-wide Sidecar.
    workload_selector: Mapping[str, str] | None = None
    egress: tuple[IstioEgressListener, ...] = ()
    ingress: tuple[IstioIngressListener, ...] = ()
    #: ``None`` when the block is absent: the mesh-wide policy applies.
    outbound_traffic_policy: OutboundTrafficPolicy | None = None

    def egress_listener_for(self, port: int) -> IstioEgressListener | None:
        """The listener with this port, else the port-less catch-all (Istio's precedence)."""
        exact = next((e for e in self.egress if e.port is not None and e.port.number == port), None)
        return exact or next((e for e in self.egress if e.port is None), None)


# -- pure helpers -----------------------------------------------------------------------------


def _listener_imports(listener: IstioEgressListener, host: str, namespace: str) -> bool:
    included = excluded = False
    for h in listener.hosts:
        if not overlaps(h.dns_name, host):
            continue
        if h.excluded:
            excluded = excluded or h.namespace[1:] == namespace
        elif h.namespace in ("*", namespace):
            included = True
    return included and not excluded


def imports_host(
    sidecar: Sidecar, host_fqdn: str, host_namespace: str, port: int | None = None
) -> bool:
    """Whether ``sidecar`` makes a service (``host_fqdn`` defined in ``host_namespace``) visible.

    No egress listeners means everything is visible. With ``port``, only the listener for that
    port (else the catch-all) counts; without, any listener does. ``~ns/host`` entries subtract.
    """
    if not sidecar.egress:
        return True
    host = host_fqdn.lower()
    if port is None:
        return any(_listener_imports(e, host, host_namespace) for e in sidecar.egress)
    listener = sidecar.egress_listener_for(port)
    return listener is not None and _listener_imports(listener, host, host_namespace)


# -- parsers ---------------------------------------------------------------------------------


def _parse_port(f: Fields, bind: str | None, *, allow_unix: bool) -> SidecarPort | None:
    number = f.int("number", required=True, minimum=0, maximum=65535)
    protocol = parse_protocol(f)
    name = f.str("name")
    target = f.int("targetPort", minimum=0, maximum=65535)
    f.done()
    if name is not None and not is_dns1123_label(name):
        f.error("name", f"invalid port name {name!r} (DNS-1123 label)")
    if target:
        f.error("targetPort", "targetPort has no impact on Sidecars")
    if number == 0 and not (allow_unix and bind is not None and bind.startswith(UNIX_PREFIX)):
        f.error("number", "ports with 0 value must have a unix domain socket bind address")
    return SidecarPort(number, protocol, name) if number is not None else None


def _parse_egress_host(f: Fields, path: str, text: str, loc: Location) -> NamespacedHost | None:
    def bad(message: str) -> None:
        f.ctx.issues.error(loc, f.ctx.resource, path, message)

    ns, slash, dns = text.partition("/")
    if not slash:
        bad(f"host {text!r} must be of form namespace/dnsName")
        return None
    if not ns or not dns:
        bad("config namespace and dnsName in host entry cannot be empty")
        return None
    if ns not in ("*", ".", "~") and not is_dns1123_label(ns.removeprefix("~")):
        bad(f'invalid namespace value "{ns}" in sidecar')
        return None
    if dns != "*" and "." not in dns:
        bad(f"host {dns!r}: short names (non FQDN) are not allowed")
        return None
    if problem := check_host(dns, allow_ip=False):
        bad(problem)
        return None
    return NamespacedHost(f.ctx.namespace if ns == "." else ns, dns.lower(), text)


def _parse_egress(f: Fields, index: int) -> IstioEgressListener:
    bind = f.str("bind")
    pf = f.obj("port")
    port = _parse_port(pf, bind, allow_unix=True) if pf is not None else None
    capture = f.enum("captureMode", CAPTURE_MODES) or "DEFAULT"
    items = str_items(f, "hosts")
    hosts = [_parse_egress_host(f, p, t, loc) for p, t, loc in items]
    f.done()
    check_bind(f, bind)
    if port is not None and port.number == 0 and capture == "IPTABLES":
        f.error("captureMode", "captureMode must be DEFAULT/NONE for unix domain socket listeners")
    if not items:
        f.error("hosts", "egress listener must contain at least one host")
    # Istio's duplicate rules: per namespace, a host twice, or anything next to ns/*.
    seen: dict[str, set[str]] = {}
    for path, text, loc in items:
        ns, slash, dns = text.partition("/")
        if not slash:
            continue
        svcs = seen.setdefault(f.ctx.namespace if ns == "." else ns, set())
        if (dns != "*" and (dns in svcs or "*" in svcs)) or (dns == "*" and svcs):
            f.ctx.issues.warning(loc, f.ctx.resource, path, f"duplicated egress host: {text}")
        svcs.add(dns)
    if "*" in seen.get("*", ()) and len(seen) > 1:
        f.warn("hosts", "`*/*` host selects all resources, no other hosts can be added")
    return IstioEgressListener(index, f.loc(), port, bind, capture, tuple(h for h in hosts if h))


def check_unix_path(path: str) -> str | None:
    """Why ``path`` (after ``unix://``) is not a socket path: Istio's ``ValidateUnixAddress``."""
    if not path:
        return "unix address must not be empty"
    if path.startswith("@"):
        return None  # an abstract socket name
    if not path.startswith("/") or path.endswith("/"):
        return f"{path} is not an absolute path to a file"
    return None


def check_default_endpoint(endpoint: str) -> str | None:
    """Why an ingress ``defaultEndpoint`` is invalid, or ``None`` (``ValidateSidecar``).

    ``unix://`` + a socket path, or ``HOST:PORT`` with HOST one of 127.0.0.1, 0.0.0.0, [::1],
    [::] or empty, and PORT in 1..65535.
    """
    if endpoint.startswith(UNIX_PREFIX):
        return check_unix_path(endpoint.removeprefix(UNIX_PREFIX))
    host, colon, port = endpoint.rpartition(":")
    if not colon:
        return f"defaultEndpoint {endpoint!r}: missing port in address"
    if host.startswith("["):
        host = host.removeprefix("[").removesuffix("]")
    elif ":" in host:
        return f"defaultEndpoint {endpoint!r}: too many colons in address"
    if host not in _ENDPOINT_HOSTS:
        return (
            "defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, "
            "[::]:<port>, unix://filepath or unset"
        )
    if not port.isdigit():
        return f"defaultEndpoint port ({port}) is not a number"
    if not 1 <= int(port) <= 65535:
        return f"port number {int(port)} must be in the range 1..65535"
    return None


def _check_ingress_tls(tf: Fields, port: SidecarPort | None) -> None:
    """Istio's ingress-only TLS limits, then the Gateway server rules (``validateTLSOptions``)."""
    for key, message in _INGRESS_TLS_FORBIDDEN.items():
        if tf.has(key) and tf.data[key] not in ([], False):
            tf.error(key, message)
    tls = parse_server_tls(tf)
    if tls.mode in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
        tf.error("mode", f"cannot set mode to {tls.mode} in sidecar ingress tls")
    if port is not None and not is_tls_protocol(port.protocol):
        tf.error(None, "server cannot have TLS settings for non HTTPS/TLS ports")


def _parse_ingress(f: Fields, index: int) -> IstioIngressListener:
    bind = f.str("bind")
    pf = f.obj("port")
    port = _parse_port(pf, bind, allow_unix=False) if pf is not None else None
    capture = f.enum("captureMode", CAPTURE_MODES) or "DEFAULT"
    default_endpoint = f.str("defaultEndpoint")
    if (tf := f.obj("tls")) is not None:
        _check_ingress_tls(tf, port)
    if (cf := f.obj("connectionPool")) is not None:
        pool = parse_connection_pool(cf)
        if pool.http is not None and port is not None and not is_http_protocol(port.protocol):
            cf.warn(
                "http",
                f"HTTP connection pool settings are configured for port {port.number} but its "
                f"protocol is not HTTP ({port.protocol}); only TCP settings will apply",
            )
    f.done()
    if pf is None and not f.has("port"):
        f.error("port", "port is required for ingress listeners")
    check_bind(f, bind)
    if default_endpoint and (problem := check_default_endpoint(default_endpoint)):
        f.error("defaultEndpoint", problem)
    return IstioIngressListener(index, f.loc(), port, bind, capture, default_endpoint)


def _parse_outbound(f: Fields) -> OutboundTrafficPolicy:
    mode = f.enum("mode", (ALLOW_ANY, REGISTRY_ONLY))
    proxy = None
    if (pf := f.obj("egressProxy")) is not None:
        proxy = parse_destination(pf)
        if mode != ALLOW_ANY:
            f.error(
                "egressProxy",
                "egressProxy must be set only with ALLOW_ANY outbound traffic policy mode",
            )
        elif proxy is not None and proxy.port is None:
            f.error("egressProxy", "egressProxy port must be set")
    f.done()
    if mode is None and not f.has("mode"):
        f.warn(
            None,
            "outboundTrafficPolicy without mode means REGISTRY_ONLY (the enum's zero "
            "value), not the mesh default; write mode explicitly",
        )
    return OutboundTrafficPolicy(mode or REGISTRY_ONLY, proxy)


def parse_sidecar(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> Sidecar:
    """Read a Sidecar ``spec`` with Istio's single-resource rules."""
    selector: dict[str, str] | None = None
    if (wf := spec.obj("workloadSelector")) is not None:
        selector = wf.str_map("labels")
        check_labels(wf, "labels", selector)
        wf.done()
        if not selector:
            wf.warn(
                None,
                "workloadSelector without labels: the Sidecar applies to every "
                "workload in the namespace",
            )
    egress_fields = field_objs(spec, "egress")
    egress = tuple(_parse_egress(ef, i) for i, ef in enumerate(egress_fields))
    ingress_fields = field_objs(spec, "ingress")
    ingress = tuple(_parse_ingress(inf, i) for i, inf in enumerate(ingress_fields))
    of = spec.obj("outboundTrafficPolicy")
    outbound = _parse_outbound(of) if of is not None else None
    if (pool := spec.obj("inboundConnectionPool")) is not None:
        parse_connection_pool(pool)
    spec.done()

    # Istio's emptiness test is on the decoded proto: an empty list counts as unset.
    if not (egress or ingress or spec.has("outboundTrafficPolicy") or pool is not None):
        spec.error(None, "empty Sidecar: set egress, ingress or outboundTrafficPolicy")
    catch_all = False
    ports: set[int] = set()
    binds: set[str] = set()
    for ef, listener in zip(egress_fields, egress, strict=True):
        if listener.port is None and not ef.has("port"):
            if catch_all:
                ef.error(None, "egress can have only one listener with empty port")
            elif listener.index != len(egress) - 1:
                ef.error(
                    None,
                    "the egress listener with empty port should be the last listener in the list",
                )
            else:
                catch_all = True
        elif listener.port is not None and listener.port.number == 0:
            if listener.bind in binds:
                ef.error("bind", "unix domain socket values for listeners must be unique")
            binds.add(listener.bind or "")
        elif listener.port is not None:
            if listener.port.number in ports:
                ef.error(
                    "port",
                    f"port {listener.port.number}: ports on IP bound listeners must be unique",
                )
            ports.add(listener.port.number)
    ports.clear()
    for inf, ing in zip(ingress_fields, ingress, strict=True):
        if ing.port is not None:
            if ing.port.number in ports:
                inf.error(
                    "port", f"port {ing.port.number}: ports on IP bound listeners must be unique"
                )
            ports.add(ing.port.number)
    return Sidecar(
        api_version=api_version,
        metadata=metadata,
        location=location,
        workload_selector=selector,
        egress=egress,
        ingress=ingress,
        outbound_traffic_policy=outbound,
    )
