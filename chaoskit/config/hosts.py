"""Istio host names: validation, short-name expansion and wildcard matching.

Rules (istio/istio ``pilot/pkg/model/config.go`` ``ResolveShortnameToFQDN`` and
``pkg/config/host/name.go`` ``Name.Matches``): a name with no dot is a Kubernetes short name and
expands with the *rule's* namespace (``reviews`` in ``default`` →
``reviews.default.svc.cluster.local``); a name with a dot is taken literally; ``*`` and IP addresses
never expand. Wildcards are a leading ``*.`` label or a bare ``*``; ``*.foo.com`` matches
``a.foo.com`` and ``a.b.foo.com`` but not ``foo.com``.
"""

from __future__ import annotations

import ipaddress
import re

CLUSTER_DOMAIN = "svc.cluster.local"

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


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


def check_host(host: str, *, allow_wildcard: bool = True, allow_ip: bool = True) -> str | None:
    """Why ``host`` is not a valid Istio host name, or ``None``."""
    if not host:
        return "host must not be empty"
    if host == "*":
        return None if allow_wildcard else "wildcard host * is not allowed here"
    if is_ip(host):
        return None if allow_ip else f"{host!r} is an IP address, not a host name"
    name = host.lower().rstrip(".")
    if len(name) > 253:
        return f"host {host!r} is longer than 253 characters"
    labels = name.split(".")
    if labels[0] == "*":
        if not allow_wildcard:
            return f"wildcard host {host!r} is not allowed here"
        labels = labels[1:]
        if not labels:
            return None
    for label in labels:
        if "*" in label:
            return (
                f"host {host!r}: wildcards are only allowed as a whole leading label "
                "('*.example.com')"
            )
        if not _LABEL.match(label):
            return f"host {host!r} is not a valid DNS name (label {label!r})"
    return None


def expand(host: str, namespace: str) -> str:
    """The fully qualified form Istio uses for ``host`` written in ``namespace``."""
    if host == "*" or "." in host or is_ip(host) or host.startswith("*"):
        return host.lower().rstrip(".") if host != "*" else host
    return f"{host.lower()}.{namespace}.{CLUSTER_DOMAIN}"


def matches(pattern: str, host: str) -> bool:
    """Istio wildcard matching of a concrete or wildcard ``host`` against ``pattern``."""
    if pattern in ("*", host):
        return True
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".foo.com"
        if host.startswith("*."):
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
