"""The router: what Istio's sidecar or gateway does with one HTTP request.

``Router(mesh)`` indexes the configuration once; :meth:`Router.route` is pure and cheap. A
request reaches the router through a :class:`Listener`:

- ``Listener.mesh()`` — the caller's sidecar. The caller is ``req.source`` (a WorkloadEntry, or
  the anonymous workload); its namespace expands short names and selects its Sidecar resource.
- ``Listener.gateway(port)`` — the gateway listener on ``127.0.0.1:<port>``, which serves every
  HTTP server of every Gateway on that port (as one Istio gateway proxy does).

Mesh listener, in Envoy's order (istio/istio ``pilot/pkg/networking/core/httproute.go``:
``BuildSidecarOutboundVirtualHosts``, then ``buildCatchAllVirtualHost``):

1. The Host names a service: ``reviews`` (caller's namespace), ``reviews.ns``,
   ``reviews.ns.svc``, the FQDN, or a literal / wildcard ServiceEntry host. The request port
   must be a port of the service — except that the scheme's default port (80/443) on a service
   with exactly one port means that port (chaoskit leniency: ``http://reviews/`` through a
   forward proxy reaches ``reviews:9080``). The service must be exported to the caller's
   namespace and imported by its Sidecar's egress hosts for that port.
2. The VirtualService bound to ``mesh`` for that host (exact host first, then the most specific
   wildcard; the first in configuration order among several), visible to the caller. A
   VirtualService host that is not a service is routed too, on port 80 when none of the
   VirtualService's hosts is a service (Istio's ``listenPort == 80`` rule), else on the ports of
   those services. If every entry of the VirtualService is filtered out for this caller
   (``port``/``sourceLabels``/``sourceNamespace``/``gateways``), Istio emits no virtual host for
   it and the next candidate (or the default route) applies.
3. First matching rule wins; none ⇒ :class:`NoRoute`. No VirtualService but a service ⇒ the
   default route (cluster without subset, route ``default``, mesh default timeout and retries).
4. Anything else is unmatched traffic: ALLOW_ANY ⇒ :class:`Passthrough` (or the Sidecar's
   ``egressProxy``), REGISTRY_ONLY ⇒ 502 ``block_all``.

Gateway listener: see :mod:`.gateways`; nothing bound ⇒ :class:`NoRoute`.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence

from chaoskit.config.hosts import matches as host_matches
from chaoskit.config.http_route import HTTPRoute
from chaoskit.config.match import HTTPMatchRequest
from chaoskit.config.mesh import Mesh, Service
from chaoskit.config.mesh_config import REGISTRY_ONLY
from chaoskit.config.sidecar import Sidecar, imports_host
from chaoskit.config.virtual_service import MESH, VirtualService
from chaoskit.routing import rewrite
from chaoskit.routing.actions import DIRECT_RESPONSE, RuleContext, decide
from chaoskit.routing.decision import (
    BLOCK_ALL_ROUTE,
    DEFAULT_ROUTE,
    Decision,
    Forward,
    LocalReply,
    NoRoute,
    Passthrough,
)
from chaoskit.routing.delegate import expand_delegates
from chaoskit.routing.gateways import GatewayListener, build_listeners
from chaoskit.routing.headers import HeaderContext
from chaoskit.routing.matcher import request_matches, selected_entries
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.scope import (
    Scope,
    cluster_key,
    host_candidates,
    outbound_policy,
    service_ports,
    sidecar_for,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Virtual-host lookups remembered per Router (cleared when full).
_TARGET_CACHE_SIZE = 4096
Entries = tuple[tuple[HTTPRoute, HTTPMatchRequest], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Listener:
    """Where a request entered: the caller's sidecar (``port is None``) or a gateway port."""

    port: int | None = None

    @classmethod
    def mesh(cls) -> Listener:
        return cls(None)

    @classmethod
    def gateway(cls, port: int) -> Listener:
        return cls(port)

    @classmethod
    def parse(cls, text: str, request_port: int | None = None) -> Listener:
        """``"mesh"``, ``"gateway:<port>"``, or a Gateway ref ``"ns/name"`` (served on
        ``request_port``: every Gateway on that port shares one listener)."""
        if text == MESH:
            return cls.mesh()
        kind, _, port = text.partition(":")
        if kind == "gateway" and port.isdigit():
            return cls.gateway(int(port))
        if "/" in text and request_port is not None:
            return cls.gateway(request_port)
        raise ValueError(f"{text!r} is not a listener (mesh, gateway:<port> or ns/name)")

    @property
    def is_mesh(self) -> bool:
        return self.port is None

    def __str__(self) -> str:
        """``mesh`` or ``gateway:<port>`` (what :meth:`parse` reads back)."""
        return MESH if self.port is None else f"gateway:{self.port}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """The virtual host a mesh request landed on."""

    host: str
    port: int
    service: Service | None
    virtual_service: VirtualService | None
    entries: Entries


class Router:
    """Routing decisions for one immutable :class:`Mesh` snapshot."""

    def __init__(self, mesh: Mesh, *, hostname: str | None = None) -> None:
        self.mesh = mesh
        #: Value of ``%HOSTNAME%`` in header operations (left literal when ``None``).
        self.hostname = hostname
        vss = expand_delegates(mesh.virtual_services)
        self._mesh_exact: dict[str, list[VirtualService]] = {}
        wildcards: list[tuple[str, VirtualService]] = []
        #: ``id(vs)`` of each mesh-bound VirtualService (all held above) → its ports.
        self._vs_ports: dict[int, frozenset[int]] = {}
        for vs in vss:
            if MESH not in vs.gateways or vs.is_delegate:
                continue
            self._vs_ports[id(vs)] = self._registry_ports(vs)
            for h in dict.fromkeys(vs.fqdn_hosts):
                if h.startswith("*"):
                    wildcards.append((h, vs))
                else:
                    self._mesh_exact.setdefault(h, []).append(vs)
        # Most specific first; ties keep configuration order (sorted is stable).
        self._mesh_wildcards = sorted(wildcards, key=lambda hv: (hv[0] == "*", -len(hv[0])))
        self._gateways: Mapping[int, GatewayListener] = build_listeners(mesh.gateways, vss)
        self._targets: dict[tuple[object, ...], tuple[Sidecar | None, _Target | None]] = {}

    # -- public ---------------------------------------------------------------------------

    def gateway_ports(self) -> tuple[int, ...]:
        """Ports that need a gateway listener (those with at least one HTTP server)."""
        return tuple(sorted(self._gateways))

    def gateway_listener(self, port: int) -> GatewayListener | None:
        return self._gateways.get(port)

    def sidecar_for(self, req: RequestInfo) -> Sidecar | None:
        return sidecar_for(self.mesh.sidecars, req.source)

    def route(self, req: RequestInfo, listener: Listener | str, rng: random.Random) -> Decision:
        """Decide what the proxy behind ``listener`` does with ``req``.

        ``listener`` is a :class:`Listener` or its text form (:meth:`Listener.parse`). ``rng``
        is used only to pick among weighted destinations: one draw per request whose rule has
        several destinations, none otherwise.
        """
        if isinstance(listener, str):
            listener = Listener.parse(listener, req.port)
        if listener.port is None:
            return self._route_mesh(req, rng)
        return self._route_gateway(req, listener.port, rng)

    # -- mesh -----------------------------------------------------------------------------

    def _header_context(self, req: RequestInfo) -> HeaderContext:
        return HeaderContext(
            hostname=self.hostname,
            downstream_remote_address=req.client_address,
            request_headers=req.headers,
        )

    def _services_matching(self, pattern: str) -> list[Service]:
        if not pattern.startswith("*"):
            svc = self.mesh.find_service(pattern)
            return [svc] if svc is not None else []
        out = [s for n, s in self.mesh.services.items() if host_matches(pattern, n)]
        return out + [s for s in self.mesh.wildcard_services if host_matches(pattern, s.host)]

    def _registry_ports(self, vs: VirtualService) -> frozenset[int]:
        """Ports a VirtualService's non-service hosts are served on (Istio's port-80 rule)."""
        ports = {
            p for h in vs.fqdn_hosts for s in self._services_matching(h) for p in service_ports(s)
        }
        return frozenset(ports) or frozenset({80})

    def _find_service(
        self, names: Sequence[str], req: RequestInfo, sidecar: Sidecar | None
    ) -> tuple[str, Service] | None:
        """The service the Host names for this caller: an exact registry name among ``names``
        (in order), else the most specific wildcard ServiceEntry host matching the first. Of
        several definitions of one host, the first by Istio's precedence for the caller's
        namespace among those exported to it and imported by its Sidecar."""
        namespace = req.source.namespace

        def imported(svc: Service) -> bool:
            if sidecar is None:
                return True
            port = _service_port(svc, req)
            return imports_host(sidecar, svc.host, svc.entry.namespace, port)

        for n in names:
            for svc in self.mesh.visible_services(n, namespace):
                if svc.host.startswith("*"):
                    break  # exact names first: wildcards only for the first name, below
                if imported(svc):
                    return n, svc
        wild = self.mesh.visible_service(names[0], namespace, imported)
        return (names[0], wild) if wild is not None else None

    def _virtual_service(
        self, names: Sequence[str], req: RequestInfo, scope: Scope, *, registered: bool
    ) -> tuple[str, VirtualService, Entries] | None:
        """The first visible mesh VirtualService for one of ``names`` with routes for this
        caller (exact names in order, then wildcards on the first name)."""
        candidates = [(n, n, vs) for n in names for vs in self._mesh_exact.get(n, ())]
        candidates += [
            (names[0], h, vs) for h, vs in self._mesh_wildcards if host_matches(h, names[0])
        ]
        for name, pattern, vs in candidates:
            if not registered and scope.port not in self._vs_ports[id(vs)]:
                continue
            if not scope.host_visible(pattern, vs.namespace, vs.export_to):
                continue
            entries = selected_entries(vs.http, scope.port, req.source, MESH)
            if entries:
                return name, vs, entries
        return None

    def _target(self, req: RequestInfo, sidecar: Sidecar | None) -> _Target | None:
        names = host_candidates(req.host, req.source.namespace)
        found = self._find_service(names, req, sidecar)
        if found is not None:
            name, svc = found
            port = _service_port(svc, req)
            scope = Scope(self.mesh, req.source.namespace, sidecar, port or req.port)
            if port is not None and scope.service_visible(svc, port):
                hit = self._virtual_service((name,), req, scope, registered=True)
                if hit is not None:
                    return _Target(name, port, svc, hit[1], hit[2])
                return _Target(name, port, svc, None, ())
        scope = Scope(self.mesh, req.source.namespace, sidecar, req.port)
        hit = self._virtual_service(names, req, scope, registered=False)
        if hit is not None:
            return _Target(hit[0], req.port, None, hit[1], hit[2])
        return None

    def _lookup(self, req: RequestInfo) -> tuple[Sidecar | None, _Target | None]:
        """The caller's Sidecar and the virtual host, memoised: both depend only on the
        authority, port and scheme and on who is calling, and the mesh never changes under a
        Router. Requests that can only be matched rule by rule are matched below, every time."""
        src = req.source
        key = (req.authority, req.port, req.scheme, src.namespace,
               tuple(sorted(src.labels.items())) if src.labels else ())  # fmt: skip
        found = self._targets.get(key)
        if found is None:
            sidecar = sidecar_for(self.mesh.sidecars, src)
            found = (sidecar, self._target(req, sidecar))
            if len(self._targets) >= _TARGET_CACHE_SIZE:  # client-chosen keys: stay bounded
                self._targets.clear()
            self._targets[key] = found
        return found

    def _route_mesh(self, req: RequestInfo, rng: random.Random) -> Decision:
        sidecar, target = self._lookup(req)
        defaults = self.mesh.defaults
        if target is None:
            return self._unmatched(req, sidecar)
        scope = Scope(self.mesh, req.source.namespace, sidecar, target.port)
        at_port = req if req.port == target.port else dataclasses.replace(req, port=target.port)
        if target.virtual_service is None:
            assert target.service is not None
            return Forward(
                cluster=cluster_key(self.mesh, target.service, target.port),
                virtual_service=None,
                route=None,
                route_name=DEFAULT_ROUTE,
                path=rewrite.join(req.path, req.query),
                authority=req.authority,
                timeout=defaults.route_timeout,
                retry=defaults.retry,
            )
        ctx = RuleContext(scope, defaults, self._header_context(req))
        for route, match in target.entries:
            if request_matches(match, at_port):
                return decide(ctx, target.virtual_service, route, match, at_port, rng)
        return NoRoute(target.virtual_service)

    def _unmatched(self, req: RequestInfo, sidecar: Sidecar | None) -> Decision:
        policy = outbound_policy(sidecar, self.mesh.defaults)
        if policy.mode == REGISTRY_ONLY:
            return LocalReply(502, b"", (), DIRECT_RESPONSE, BLOCK_ALL_ROUTE)
        if policy.egress_proxy is not None:
            scope = Scope(self.mesh, req.source.namespace, sidecar, req.port)
            cluster, _ = scope.cluster(policy.egress_proxy)
            return Forward(
                cluster=cluster,
                virtual_service=None,
                route=None,
                route_name=Passthrough.route_name,
                path=rewrite.join(req.path, req.query),
                authority=req.authority,
            )
        return Passthrough(req.host, req.port)

    # -- gateway --------------------------------------------------------------------------

    def _route_gateway(self, req: RequestInfo, port: int, rng: random.Random) -> Decision:
        listener = self._gateways.get(port)
        vhost = listener.virtual_host(req.host) if listener is not None else None
        if vhost is None:
            return NoRoute()
        if vhost.https_redirect and req.scheme != "https":
            location = rewrite.https_redirect_location(req.authority, req.path, req.query)
            return LocalReply(301, b"", (("location", location),), DIRECT_RESPONSE, "")
        at_port = dataclasses.replace(req, port=port)
        hctx = self._header_context(req)
        for gr in vhost.routes:
            if request_matches(gr.match, at_port):
                scope = Scope(self.mesh, gr.proxy.namespace, None, port)
                ctx = RuleContext(scope, self.mesh.defaults, hctx)
                return decide(ctx, gr.virtual_service, gr.route, gr.match, at_port, rng)
        return NoRoute()


def _service_port(svc: Service, req: RequestInfo) -> int | None:
    """The service port a request addresses, with the default-port leniency (module doc)."""
    ports = service_ports(svc)
    if not ports or req.port in ports:
        return req.port
    if len(ports) == 1 and req.port == _DEFAULT_PORTS.get(req.scheme):
        return ports[0]
    return None
