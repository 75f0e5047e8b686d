"""Which connections chaoskit opens up, and where the rest go: Istio's listeners for traffic
that is not plain HTTP.

HTTPS to a host in the registry is intercepted (TLS terminated with mitmproxy's CA) so its
requests go through the request path like any other. Everything else on a ``CONNECT`` — TLS to
hosts outside the registry, raw TCP — is a tunnel passed through untouched: to an endpoint of
the service for a registry host (Envoy's TCP proxy to the cluster, not wherever DNS says), to
the original destination under ``ALLOW_ANY``, nowhere under ``REGISTRY_ONLY`` (Istio's
``BlackHoleCluster``). A tunnel into this proxy itself is refused as a loop.

chaoskit forwards every HTTP request itself, so the only upstream connections mitmproxy may
open are those tunnels and the WebSocket handshakes chaoskit routed and handed over
(:meth:`TunnelScope.server_connect`): anything else is an HTTP request that escaped the
enforcer, and is refused rather than forwarded.
"""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import http, tls

from chaoskit.config import hosts
from chaoskit.config.mesh import Mesh
from chaoskit.loadbalancing.base import choose_avoiding
from chaoskit.proxy.identity import CallerIdentity, workload
from chaoskit.proxy.listeners import from_self
from chaoskit.proxy.loops import LOOP_STAT
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.routing.decision import Forward, LocalReply
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.router import Listener

logger = logging.getLogger("chaoskit")
_MESH = Listener.mesh()


def in_registry(mesh: Mesh, host: str) -> bool:
    """Is ``host`` (as a client names it) a service of the mesh? Decides TLS interception."""
    name = host.lower().rstrip(".")
    candidates = {name, hosts.expand(name, "default")}
    if name.count(".") in (1, 2) and not hosts.is_ip(name):  # svc.ns or svc.ns.svc
        svc, _, rest = name.partition(".")
        candidates.add(f"{svc}.{rest.split('.')[0]}.{hosts.CLUSTER_DOMAIN}")
    return any(mesh.find_service(c) is not None for c in candidates)


class TunnelScope:
    """The mitmproxy addon deciding interception and tunnel destinations."""

    def __init__(self, pipeline: Pipeline, identity: CallerIdentity, own: OwnSockets) -> None:
        self.pipeline = pipeline
        self.identity = identity
        self.own = own
        #: client connection id → where its tunnel to a registry host goes (None: nowhere)
        self._targets: dict[str, tuple[str, int] | None] = {}
        #: client connections whose tunnel chaoskit passes through (mitmproxy connects those)
        self.passed_through: set[str] = set()
        #: client connection id → the endpoint of the WebSocket handshake chaoskit routed and
        #: handed over (mitmproxy connects that one: chaoskit.proxy.websocket_relay)
        self.upgrades: dict[str, tuple[str, int]] = {}

    def allow_upgrade(self, client_id: str, address: tuple[str, int]) -> None:
        self.upgrades[client_id] = address

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """Admit or refuse a tunnel, and decide where it may go: refuses a tunnel into this
        proxy itself, and whatever Istio's listeners would send to the ``block_all`` route
        under REGISTRY_ONLY (a host outside the registry, or a port its ServiceEntry does not
        declare)."""
        client_id = flow.client_conn.id
        host, port = flow.request.host, flow.request.port
        pipeline = self.pipeline
        if from_self(flow, self.own) or pipeline.own_listener(host, port):
            logger.info("chaoskit: CONNECT %s:%d would loop into this proxy: 502", host, port)
            pipeline.stats.inc(LOOP_STAT)
            flow.response = http.Response.make(502, b"request loop detected", {"server": "envoy"})
            return
        snapshot = pipeline.snapshot
        proxy_auth = flow.request.headers.get("proxy-authorization")
        source = workload(snapshot.mesh, self.identity.name(client_id, proxy_auth))
        info = RequestInfo(
            method="CONNECT", scheme="https", authority=f"{host}:{port}", path="/", port=port,
            source=source,
        )  # fmt: skip
        decision = snapshot.router.route(info, _MESH, pipeline.seeds.stream("connect"))
        if isinstance(decision, LocalReply) and decision.route_name == "block_all":
            # Istio's BlackHoleCluster closes such connections; a forward proxy says so with 502.
            flow.response = http.Response.make(502, b"", {"server": "envoy"})
            return
        if in_registry(snapshot.mesh, host):
            self._targets[client_id] = self._target(decision, source.name)

    def _target(self, decision: object, source: str) -> tuple[str, int] | None:
        """An endpoint of the service a tunnel is for (``None``: no endpoint to go to)."""
        if not isinstance(decision, Forward):
            return None
        cluster = self.pipeline.clusters.get(decision.cluster, source)
        if cluster is None or cluster.original_destination:
            return None
        healthy = cluster.healthy_hosts(self.pipeline.clock.monotonic())
        host = choose_avoiding(cluster.lb, healthy, cluster.rng) if healthy else None
        return (host.address, host.port) if host is not None else None

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """Intercept TLS only for hosts in the registry; tunnel everything else untouched."""
        server = data.context.server.address
        host = data.client_hello.sni or (server[0] if server else "")
        if not host or not in_registry(self.pipeline.snapshot.mesh, host):
            data.ignore_connection = True
            self.passed_through.add(data.context.client.id)

    def tcp_start(self, flow: Any) -> None:
        """A tunnel carrying neither TLS nor HTTP: passed through as it is."""
        self.passed_through.add(flow.client_conn.id)

    def server_connect(self, data: Any) -> None:
        """mitmproxy is about to open an upstream connection itself: only for a tunnel chaoskit
        passes through, to the endpoint chosen at CONNECT, never into this proxy."""
        client_id = data.client.id
        if self.upgrades.get(client_id) == tuple(data.server.address or ()):
            del self.upgrades[client_id]
            return  # routed, loop-checked and fault-checked as a request already
        if client_id not in self.passed_through:
            logger.error(
                "chaoskit: refused an upstream connection mitmproxy tried to open to %s "
                "(chaoskit forwards every HTTP request itself)", data.server.address,
            )  # fmt: skip
            data.server.error = "chaoskit: refused (not a tunnel)"
            return
        if client_id in self._targets:
            target = self._targets[client_id]
            if target is None:
                data.server.error = "chaoskit: no healthy endpoint for this tunnel"
                return
            data.server.address = target
        address = data.server.address
        if address and self.pipeline.own_listener(str(address[0]), int(address[1])):
            self.pipeline.stats.inc(LOOP_STAT)
            data.server.error = "chaoskit: request loop (the tunnel leads into this proxy)"

    def server_connected(self, data: Any) -> None:
        server = data.server
        if server.sockname and server.peername:
            self.own.add_connection(server.id, server.sockname, server.peername)

    def server_disconnected(self, data: Any) -> None:
        self.own.remove_connection(data.server.id)

    def client_disconnected(self, client: Any) -> None:
        self._targets.pop(client.id, None)
        self.passed_through.discard(client.id)
        self.upgrades.pop(client.id, None)
