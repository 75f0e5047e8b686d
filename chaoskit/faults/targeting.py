"""Does an :class:`~chaoskit.config.upstream_fault.UpstreamFault` apply to this upstream attempt?

A fault targets attempts, not requests: the proxy asks once per attempt (retries included),
after the load balancer picked ``endpoint``, so a fault pinned to one endpoint hits only the
attempts that land there. Every condition the fault sets must hold (AND); ``match`` entries are
OR-ed and evaluated as on a sidecar (gateway ``mesh``), an empty list matching every request.
"""

from __future__ import annotations

import ipaddress

from chaoskit.config import hosts
from chaoskit.config.upstream_fault import Endpoint, UpstreamFault
from chaoskit.faults.actions.websocket import is_websocket_upgrade
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.routing.matcher import matches
from chaoskit.routing.request import RequestInfo

#: The proxy an UpstreamFault's ``match`` entries are evaluated for.
GATEWAY = "mesh"


def targets(
    fault: UpstreamFault,
    *,
    host_fqdn: str,
    subset: str | None,
    endpoint: UpstreamHost,
    request: RequestInfo,
) -> bool:
    """Whether ``fault`` applies to an attempt to ``endpoint`` of ``host_fqdn``/``subset``.

    - ``host``: the fault's FQDN equals ``host_fqdn``, or is a wildcard (``*.example.com``)
      covering it;
    - ``subset``: when the fault names one, the route's destination subset must be it;
    - ``endpointLabels``: the endpoint carries every label with the same value;
    - ``endpoint``: the endpoint's address and port (IP addresses compared as addresses, so
      ``::1`` equals ``0:0::1``);
    - ``match``: any entry matches ``request`` (none set: every request);
    - ``webSocket``: a fault with this action targets WebSocket upgrades only.
    """
    if not hosts.matches(fault.fqdn, host_fqdn.lower().rstrip(".")):
        return False
    if fault.subset is not None and fault.subset != subset:
        return False
    labels = endpoint.labels
    if any(labels.get(k) != v for k, v in fault.endpoint_labels.items()):
        return False
    if fault.endpoint is not None and not same_endpoint(fault.endpoint, endpoint):
        return False
    if fault.websocket is not None and not is_websocket_upgrade(request.headers):
        return False
    return not fault.match or any(matches(m, request, GATEWAY) for m in fault.match)


def same_endpoint(target: Endpoint, host: UpstreamHost) -> bool:
    """``target`` (from ``spec.endpoint``) names ``host``: same port, same address."""
    return target.port == host.port and _address(target.address) == _address(host.address)


def _address(text: str) -> str:
    text = text.strip("[]").lower()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.rstrip(".")
