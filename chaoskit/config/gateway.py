"""``Gateway``: the listeners VirtualServices bind to with ``gateways: [name]``.

chaoskit serves each HTTP server of a Gateway as a reverse-proxy listener on
``127.0.0.1:<port.number>`` (docs/configuration.md §8). Server hosts are kept as
``(namespace, dnsName)`` pairs so binding a VirtualService is a pure intersection (istio/istio
``pilot/pkg/networking/core/gateway.go``, ``pickMatchingGatewayHosts``); validation follows
Istio's webhook (``pkg/config/validation/validation.go``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from chaoskit.config.fields import Fields
from chaoskit.config.hosts import check_host, is_dns1123_label, is_ip, matches
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.service_entry import (
    UNIX_PREFIX,
    field_objs,
    is_http_protocol,
    is_tls_protocol,
    parse_protocol,
    str_items,
)
from chaoskit.config.yamlsource import Location

TLS_MODES = (
    "PASSTHROUGH",
    "SIMPLE",
    "MUTUAL",
    "AUTO_PASSTHROUGH",
    "ISTIO_MUTUAL",
    "OPTIONAL_MUTUAL",
)
_PASSTHROUGH = ("PASSTHROUGH", "AUTO_PASSTHROUGH")
#: Certificate-bearing ``tls`` fields (YAML names), checked against the mode.
_CERT_FIELDS = (
    "serverCertificate",
    "privateKey",
    "caCertificates",
    "caCrl",
    "credentialName",
    "credentialNames",
    "tlsCertificates",
)
_TLS_VERSIONS = ("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")


@dataclasses.dataclass(frozen=True, slots=True)
class NamespacedHost:
    """A ``[namespace/]dnsName`` host of a Gateway server or Sidecar egress listener.

    ``namespace`` is ``*`` (any), a concrete namespace (``.`` already resolved to the owner's),
    or, in a Sidecar only, ``~``-prefixed (exclusion). ``text`` is what the YAML said.
    """

    namespace: str
    dns_name: str
    text: str

    @property
    def excluded(self) -> bool:
        return self.namespace.startswith("~")


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    number: int
    protocol: str
    name: str
    target_port: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ServerTLSSettings:
    """``mode`` defaults to the enum's zero value, PASSTHROUGH, as in Istio."""

    mode: str = "PASSTHROUGH"
    https_redirect: bool = False
    credential_name: str | None = None
    credential_names: tuple[str, ...] = ()
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    #: Any certificate field is set (file paths, credential names or ``tlsCertificates``).
    has_certificates: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Server:
    index: int
    location: Location
    port: Port | None
    hosts: tuple[NamespacedHost, ...] = ()
    bind: str | None = None
    tls: ServerTLSSettings | None = None
    name: str | None = None
    default_endpoint: str | None = None

    @property
    def is_http(self) -> bool:
        """Served by chaoskit as a plain-HTTP listener."""
        return self.port is not None and is_http_protocol(self.port.protocol)


@dataclasses.dataclass(frozen=True, slots=True)
class Gateway(Resource):
    KIND = "Gateway"

    selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    servers: tuple[Server, ...] = ()


# -- pure helpers -----------------------------------------------------------------------------


def intersect_host(server_dns: str, vs_host: str) -> str | None:
    """The host routed when a server host meets a VirtualService host, or ``None``.

    The narrower name wins: server ``*.example.com`` + VS ``a.example.com`` → ``a.example.com``,
    and the reverse too; ``example.com`` does not meet ``*.example.com``.
    """
    server_dns, vs_host = server_dns.lower(), vs_host.lower()
    if matches(server_dns, vs_host):
        return vs_host
    if matches(vs_host, server_dns):
        return server_dns
    return None


def server_accepts(entry: NamespacedHost, vs_namespace: str, host: str) -> bool:
    """Whether a server host entry routes VS ``host`` (fully qualified) from ``vs_namespace``."""
    if entry.namespace not in ("*", vs_namespace):
        return False
    return intersect_host(entry.dns_name, host) is not None


def routed_hosts(server: Server, vs_namespace: str, vs_hosts: tuple[str, ...]) -> tuple[str, ...]:
    """The hosts a VirtualService gets on ``server``: every non-empty intersection, deduplicated."""
    out: dict[str, None] = {}
    for entry in server.hosts:
        if entry.namespace not in ("*", vs_namespace):
            continue
        for h in vs_hosts:
            if (hit := intersect_host(entry.dns_name, h)) is not None:
                out[hit] = None
    return tuple(out)


# -- parsers ---------------------------------------------------------------------------------


def check_bind(f: Fields, bind: str | None) -> None:
    """``bind`` is an IP address or ``unix://`` + an absolute path (or ``@`` abstract name)."""
    if bind is None:
        return
    if bind.startswith(UNIX_PREFIX):
        ok = bind.removeprefix(UNIX_PREFIX).startswith(("/", "@"))
    else:
        ok = is_ip(bind)
    if not ok:
        f.error("bind", f"bind {bind!r} must be an IP address or a unix:// absolute path")


def _parse_host(
    f: Fields, path: str, text: str, loc: Location, gw_namespace: str
) -> NamespacedHost | None:
    def bad(message: str) -> None:
        f.ctx.issues.error(loc, f.ctx.resource, path, message)

    ns, slash, dns = text.partition("/")
    if not slash:
        ns, dns = "*", text
    elif not ns or not dns:
        bad("config namespace and dnsName in host entry cannot be empty")
        return None
    elif ns not in ("*", ".") and not is_dns1123_label(ns):
        bad(f'invalid namespace value "{ns}" in gateway')
        return None
    if dns != "*" and "." not in dns:
        bad(f"host {dns!r}: short names (non FQDN) are not allowed")
        return None
    if not is_ip(dns) and (problem := check_host(dns)):
        bad(problem)
        return None
    return NamespacedHost(gw_namespace if ns == "." else ns, dns.lower(), text)


def _parse_port(f: Fields, bind: str | None) -> Port | None:
    number = f.int("number", required=True, minimum=0, maximum=65535)
    protocol = parse_protocol(f, required=True)
    name = f.str("name")
    target = f.int("targetPort", minimum=0, maximum=65535)
    f.done()
    unix = bind is not None and bind.startswith(UNIX_PREFIX)
    if number == 0 and not unix:
        f.error("number", "port number 0 is only valid with a unix:// bind")
    elif number and unix:
        f.error("number", "port number must be 0 for unix domain socket")
    if target:
        f.error("targetPort", "targetPort has no impact on Gateways")
    if name is None:
        f.error("name", "port name must be set")
    if number is None or protocol is None:
        return None
    return Port(number, protocol, name or "", target or None)


def parse_server_tls(f: Fields) -> ServerTLSSettings:
    """A Gateway server's (or Sidecar ingress listener's) ``tls`` block.

    Mirrors istio/istio ``pkg/config/validation/validation.go`` ``validateTLSOptions``: each
    ``tlsCertificates`` entry needs its own certificate and key in SIMPLE/MUTUAL modes.
    """
    mode = f.enum("mode", TLS_MODES) or "PASSTHROUGH"
    redirect = bool(f.bool("httpsRedirect"))
    cred = f.str("credentialName")
    creds = f.str_list("credentialNames")
    cert = f.str("serverCertificate")
    key = f.str("privateKey")
    ca = f.str("caCertificates")
    crl = f.str("caCrl")
    tls_certs = field_objs(f, "tlsCertificates")
    pairs = [(cert, key, f)] if not tls_certs else []
    for tc in tls_certs:
        pairs.append((tc.str("serverCertificate"), tc.str("privateKey"), tc))
        tc.str("caCertificates")
        tc.done()
    for k in ("subjectAltNames", "verifyCertificateSpki", "verifyCertificateHash", "cipherSuites"):
        f.str_list(k)
    f.enum("minProtocolVersion", _TLS_VERSIONS)
    f.enum("maxProtocolVersion", _TLS_VERSIONS)
    f.done()
    present = [k for k in _CERT_FIELDS if f.has(k)]
    if mode == "ISTIO_MUTUAL":
        for k in present:
            f.error(k, f"ISTIO_MUTUAL TLS cannot have associated {k}")
    elif mode in _PASSTHROUGH and present:
        f.warn(None, f"{mode} mode does not use certificates, they will be ignored")
    sources = [cert is not None and key is not None, cred is not None, bool(creds), bool(tls_certs)]
    if sum(sources) > 1:
        f.error(
            None,
            "only one of credentialName, credentialNames, serverCertificate/privateKey, "
            "tlsCertificates may be set",
        )
    if mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and cred is None and not creds:
        label = "SIMPLE TLS" if mode == "SIMPLE" else "MUTUAL TLS"
        for pair_cert, pair_key, where in pairs:
            if pair_cert is None:
                where.error(None, f"{label} requires a server certificate (or a credentialName)")
            if pair_key is None:
                where.error(None, f"{label} requires a private key (or a credentialName)")
        if label == "MUTUAL TLS" and ca is None:
            f.error(None, f"{label} requires a client CA bundle (caCertificates)")
        if len(tls_certs) > 2:
            f.warn("tlsCertificates", f"{label} can support up to 2 server certificates")
    if crl is not None and cred is not None:
        f.error("caCrl", "CRL is not supported with credentialName; put it in the credential")
    if crl is not None and mode == "SIMPLE":
        f.error("caCrl", "CRL is not supported with SIMPLE TLS")
    return ServerTLSSettings(mode, redirect, cred, creds, cert, key, ca, bool(present))


def _parse_server(f: Fields, index: int, gw_namespace: str, port_names: set[str]) -> Server:
    bind = f.str("bind")
    port = None
    if (pf := f.obj("port", required=True)) is not None:
        port = _parse_port(pf, bind)
        if port is not None and port.name in port_names:
            pf.error("name", f"port names in servers must be unique: duplicate name {port.name}")
        port_names.add(port.name if port else "")
    host_items = str_items(f, "hosts")
    hosts = [_parse_host(f, p, t, loc, gw_namespace) for p, t, loc in host_items]
    tf = f.obj("tls")
    tls = parse_server_tls(tf) if tf is not None else None
    name = f.str("name")
    default_endpoint = f.str("defaultEndpoint")
    f.done()
    if not host_items:
        f.error("hosts", "server config must contain at least one host")
    check_bind(f, bind)
    if port is not None:
        is_tls, is_http = is_tls_protocol(port.protocol), is_http_protocol(port.protocol)
        if is_tls and tls is None:
            f.error(
                "tls", f"server must have TLS settings for {port.protocol} (HTTPS/TLS protocols)"
            )
        elif tls is not None and is_http and (tls.mode not in _PASSTHROUGH or tls.has_certificates):
            f.error("tls", "server cannot have TLS settings for plain text HTTP ports")
        elif tls is not None and not is_tls and not is_http:
            f.error("tls", "server cannot have TLS settings for non HTTPS/TLS ports")
        if tls is not None and tls.https_redirect and not is_http:
            f.warn("tls", "tls.httpsRedirect should only be used with http servers")
    return Server(
        index=index,
        location=f.loc(),
        port=port,
        hosts=tuple(h for h in hosts if h),
        bind=bind,
        tls=tls,
        name=name,
        default_endpoint=default_endpoint,
    )


def parse_gateway(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> Gateway:
    """Read a Gateway ``spec`` with Istio's single-resource rules."""
    if "." in metadata.name:  # the loader checked DNS-1123 subdomain syntax; gateways need a label
        spec.ctx.issues.error(
            location,
            spec.ctx.resource,
            "metadata.name",
            f'invalid gateway name "{metadata.name}": must be a DNS-1123 label (no dots)',
        )
    selector = spec.str_map("selector")
    port_names: set[str] = set()
    servers = tuple(
        _parse_server(sf, i, metadata.namespace, port_names)
        for i, sf in enumerate(field_objs(spec, "servers"))
    )
    spec.done()
    if not spec.data.get("servers"):
        spec.error("servers", "gateway must have at least one server")
    return Gateway(
        api_version=api_version,
        metadata=metadata,
        location=location,
        selector=selector,
        servers=servers,
    )
