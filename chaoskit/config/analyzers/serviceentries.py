"""ServiceEntry analyzers: TCP ports without addresses, and one host and port with two protocols.

Mirrors istio/istio ``pkg/config/analysis/analyzers/serviceentry/``:

- ``protocoladdresses.go`` (ServiceEntryAddressesRequired, IST0134): a port whose protocol is TCP
  or unset on an entry without ``addresses``. In Istio its listener is ``0.0.0.0:<port>`` and
  catches all TCP traffic on that port (Istio skips the finding when DNS proxying allocates
  addresses, which a chaoskit mesh has no setting for).
- ``conflictingserviceentries.go`` (ConflictingServiceEntryProtocol, IST0177): entries visible in
  one namespace (by ``exportTo``) that give one host and port different protocols; the
  protocols are compared case-blind, and an unset protocol counts as one.

Both are warnings: Istio applies them. chaoskit routes by Host name and speaks HTTP to every
port, so neither changes what the proxy does. ServiceEntries generated from Kubernetes Services
are left out, as Istio's analyzers read written ServiceEntries only.
"""

from __future__ import annotations

from chaoskit.config.exports import PUBLIC, scopes
from chaoskit.config.issues import Issues
from chaoskit.config.mesh import Mesh, service_host
from chaoskit.config.service_entry import ServiceEntry

ADDRESSES_REQUIRED = "IST0134"
CONFLICTING_PROTOCOL = "IST0177"


def analyze(mesh: Mesh, issues: Issues) -> None:
    written = [se for se in mesh.service_entries if not se.from_kubernetes]
    _addresses_required(written, issues)
    _conflicting_protocols(written, issues)


def _addresses_required(entries: list[ServiceEntry], issues: Issues) -> None:
    for se in entries:
        if se.addresses:
            continue
        for i, port in enumerate(se.ports):
            if port.protocol is None or port.protocol.upper() == "TCP":
                issues.warning(
                    se.location,
                    se.ref,
                    f"spec.ports[{i}]",
                    f"port {port.number} is {port.protocol or 'without protocol'} and the entry "
                    "has no addresses: in Istio its listener takes every TCP connection to port "
                    f"{port.number} (chaoskit routes by Host and is not affected); set addresses",
                    code=ADDRESSES_REQUIRED,
                )


def _conflicting_protocols(entries: list[ServiceEntry], issues: Issues) -> None:
    index: dict[tuple[str, str, int], list[tuple[str, ServiceEntry]]] = {}
    for se in entries:
        for scope in scopes(se.export_to, se.namespace):
            for fq in dict.fromkeys(service_host(h, se.namespace) for h in se.hosts):
                for port in se.ports:
                    key = (scope, fq, port.number)
                    index.setdefault(key, []).append(((port.protocol or "").upper(), se))
    reported: set[str] = set()
    for (scope, host, number), own in sorted(index.items()):
        found = own if scope == PUBLIC else own + index.get((PUBLIC, host, number), [])
        protocols = sorted({p for p, _ in found})
        if len(protocols) < 2:
            continue
        names = sorted({se.ref for _, se in found})
        shown = ", ".join(p or "(unset)" for p in protocols)
        for _, se in found:
            if se.ref in reported:
                continue
            reported.add(se.ref)
            issues.warning(
                se.location,
                se.ref,
                "spec.ports",
                f"{', '.join(names)} define host {host} port {number} with conflicting "
                f"protocols ({shown}): Istio uses one of them",
                code=CONFLICTING_PROTOCOL,
            )
