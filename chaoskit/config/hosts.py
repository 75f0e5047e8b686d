"""Istio host names: validation, short-name expansion and wildcard matching.

Rules (istio/istio ``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN`` and
``pkg/config/host/name.go`` ``Name.Matches``): a name with no dot is a Kubernetes short name and
expands with the *rule's* namespace (``reviews`` in ``default`` →
``reviews.default.svc.cluster.local``); a name with a dot is taken literally; ``*`` and IP addresses
never expand. A wildcard is a leading ``*``: ``*.foo.com`` matches ``a.foo.com`` and
``a.b.foo.com`` but not ``foo.com``; a partial one (``*foo.com``, ``*-foo.com``) is a plain suffix
match as in ``host.Name.Matches``.

Syntax follows ``pkg/config/validation/agent/validation.go`` ``ValidateWildcardDomain`` and
``pkg/config/labels/instance.go`` ``IsWildcardDNS1123Label``: the first label may be ``*``,
``*label`` or ``*-label``; Gateway and Sidecar hosts forbid the partial forms
(``ValidatePartialWildCard``), ServiceEntry hosts only warn about them.
"""

from __future__ import annotations

import ipaddress
import re

CLUSTER_DOMAIN = "svc.cluster.local"

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: ``IsWildcardDNS1123Label``: ``*``, or a DNS-1123 label optionally prefixed by ``*`` or ``*-``.
_WILDCARD_LABEL = re.compile(r"(\*|(\*|\*-)?[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")


def is_partial_wildcard(host: str) -> bool:
    """``*foo.com``-style hosts (``ValidatePartialWildCard``): valid names, refused in places."""
    return "*" in host and host != "*" and not host.startswith("*.")


def is_ip(host: str) -> bool:
    if ":" not in host and not host.replace(".", "").isdigit():
        return False  # an IPv4 address is digits and dots, an IPv6 one has a colon: no raise
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_dns1123_label(name: str) -> bool:
    return len(name) <= 63 and bool(_DNS1123_LABEL.match(name))


def check_host(
    host: str,
    *,
    allow_wildcard: bool = True,
    allow_ip: bool = True,
    allow_partial: bool = False,
) -> str | None:
    """Why ``host`` is not a valid Istio host name, or ``None``.

    ``allow_partial`` accepts ``*foo.com``/``*-foo.com`` (VirtualService, DestinationRule,
    ServiceEntry hosts and destinations); without it only ``*`` and ``*.suffix`` are wildcards.
    """
    if not host:
        return "host must not be empty"
    if host == "*":
        return None if allow_wildcard else "wildcard host * is not allowed here"
    if is_ip(host):
        return None if allow_ip else f"{host!r} is an IP address, not a host name"
    name = host.lower()
    if len(name) > 255:
        return f"host {host!r} is longer than 255 characters"
    first, _, rest = name.partition(".")
    if "*" in first:
        if not allow_wildcard:
            return f"wildcard host {host!r} is not allowed here"
        if len(first) > 63 or not _WILDCARD_LABEL.match(first):
            return f"host {host!r} is not a valid DNS name (label {first!r})"
        if first != "*" and not allow_partial:
            return f"partial wildcard {host!r} not allowed"
        if not rest:
            return None
        labels = rest.split(".")
    else:
        labels = name.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]  # a trailing dot: 'istio.io.'
    if labels[-1].isdigit():
        return f"host {host!r}: top level domain {labels[-1]!r} cannot be all-numeric"
    for label in labels:
        if "*" in label:
            return (
                f"host {host!r}: wildcards are only allowed in the leading label ('*.example.com')"
            )
        if not _LABEL.match(label):
            return f"host {host!r} is not a valid DNS name (label {label!r})"
    return None


def check_gateway_vs_host(host: str, *, sni: bool) -> str | None:
    """A host of a VirtualService bound to gateways, or one of its ``sniHosts``.

    ``ValidateWildcardDomainForVirtualServiceBoundToGateway``: when the VirtualService has SNI
    matches, Envoy's auto-generated ``outbound_.PORT_._.HOST`` names (AUTO_PASSTHROUGH) are
    accepted despite their underscores.
    """
    if sni and host.startswith("outbound_"):
        parts = host.split("_")
        if len(parts) < 4:
            return f"domain name {host} invalid, should follow 'outbound_.<port>_._.<hostname>'"
        if parts[0] != "outbound":
            return f"domain name {host!r} invalid (label {parts[0]!r} invalid)"
        if not any(c.isdigit() for c in parts[1].strip(".")):
            return f"domain name {host!r} invalid (port {parts[1].strip('.')!r} invalid)"
        if not any(c.isalpha() for c in parts[3].strip(".")):
            return f"domain name {host!r} invalid (hostname {parts[3].strip('.')!r} invalid)"
        return None
    return check_host(host, allow_partial=True)


def expand(host: str, namespace: str) -> str:
    """The fully qualified form Istio uses for ``host`` written in ``namespace``."""
    if host == "*" or "." in host or is_ip(host) or host.startswith("*"):
        return host.lower().rstrip(".") if host != "*" else host
    return f"{host.lower()}.{namespace}.{CLUSTER_DOMAIN}"


def matches(pattern: str, host: str) -> bool:
    """Istio wildcard matching of a concrete or wildcard ``host`` against ``pattern``."""
    if pattern in ("*", host):
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]  # ".foo.com", or "foo.com" for a partial wildcard
        if host.startswith("*"):
            return host[1:].endswith(suffix)
        return host.endswith(suffix)
    return False


def overlaps(a: str, b: str) -> bool:
    """True when some concrete host would match both ``a`` and ``b``."""
    return matches(a, b) or matches(b, a)


def short_forms(fqdn: str, namespace: str) -> list[str]:
    """Names a client in ``namespace`` may use for a Kubernetes-style FQDN, longest first."""
    suffix = f".{CLUSTER_DOMAIN}"
    if not fqdn.endswith(suffix):
        return [fqdn]
    svc_ns = fqdn[: -len(suffix)]
    svc, _, ns = svc_ns.partition(".")
    forms = [fqdn, f"{svc_ns}.svc", svc_ns]
    if ns == namespace:
        forms.append(svc)
    return forms
