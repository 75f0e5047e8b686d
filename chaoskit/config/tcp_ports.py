"""Which service ports carry plain TCP, and which carry HTTP: what a TCP listener may serve
and what an UpstreamFault's actions can act on.

Istio gives a port with protocol ``TCP``, ``MONGO``, ``MYSQL``, ``REDIS`` or ``THRIFT`` a TCP
proxy (istio/istio ``pilot/pkg/networking/core/networkfilter.go``, ``buildNetworkFiltersStack``:
the protocol filters it may add in front are off by default), HTTP-family ports an HTTP
connection manager, and ``TLS``/``HTTPS`` ports SNI routing. A port without a protocol is
sniffed, so it may carry either.
"""

from __future__ import annotations

from chaoskit.config.service_entry import ServicePort, is_http_protocol

#: Port protocols relayed as opaque bytes by Envoy's TCP proxy.
TCP_PROTOCOLS = frozenset({"TCP", "MONGO", "MYSQL", "REDIS", "THRIFT"})


def carries_tcp(port: ServicePort) -> bool:
    """A TCP listener can serve this port (a TCP protocol, or none: sniffed)."""
    return port.protocol is None or port.protocol in TCP_PROTOCOLS


def carries_http(port: ServicePort) -> bool:
    """HTTP requests reach this port through the proxy (HTTPS intercepted, or none: sniffed)."""
    return port.protocol is None or is_http_protocol(port.protocol) or port.protocol == "HTTPS"


def describe(port: ServicePort) -> str:
    """``6379/TCP``, ``9080/HTTP``, ``8000/unset`` — how messages name a port."""
    return f"{port.number}/{port.protocol or 'unset'}"
