"""What the router decided for one request: frozen results the proxy turns into actions.

Every decision is one of five shapes (:data:`Decision`):

- :class:`Forward` — send the request to a cluster (``outbound|port|subset|host``), with the
  rewritten path and authority, the header plans, mirrors, timeout, retry policy and fault of the
  matched rule;
- :class:`Passthrough` — ALLOW_ANY for a host outside the registry: the original destination, no
  timeout, no retries (Envoy's ``PassthroughCluster``, route ``allow_any``);
- :class:`LocalReply` — the proxy answers itself: ``directResponse``, ``redirect``, a Gateway's
  ``httpsRedirect`` and the REGISTRY_ONLY ``block_all`` 502; its headers are final (the route's
  response header operations are already applied);
- :class:`NoRoute` — 404, empty body, flag ``NR`` (no rule matched, or no virtual host);
- :class:`ClusterNotFound` — 503, empty body, flag ``NC`` (the rule names a host or subset that
  has no cluster).

The configuration objects a decision came from (``virtual_service``, ``route``, ``match``) are
carried for records and logs but left out of ``==`` and ``repr``: two decisions are equal when
the proxy would do the same thing.

Route names follow Istio (``route.go``): ``<http.name>.<match.name>`` when the match entry is
named, else ``http.name``, else ``""`` (an access log prints ``-``); ``default`` for the default
route of a service without VirtualService, ``allow_any`` and ``block_all`` for the catch-all
virtual host.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

from chaoskit.config.http_route import HTTPFaultInjection, HTTPRetry, HTTPRoute
from chaoskit.config.match import HTTPMatchRequest
from chaoskit.config.virtual_service import VirtualService
from chaoskit.routing.headers import EMPTY_PLAN, HeaderPlan

Headers = tuple[tuple[str, str], ...]

#: Route names Istio gives its generated routes.
DEFAULT_ROUTE = "default"
ALLOW_ANY_ROUTE = "allow_any"
BLOCK_ALL_ROUTE = "block_all"
PASSTHROUGH_CLUSTER = "PassthroughCluster"


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class ClusterKey:
    """An Envoy cluster as Istio names it: one (host, port, subset) of the registry."""

    host: str
    port: int
    subset: str | None = None
    #: ``ref`` of the ServiceEntry the cluster is built from, set only when several entries define
    #: the host (each namespace sees the one Istio picks for it, :meth:`Mesh.visible_service`).
    #: Not part of :attr:`name`: Envoy's cluster names are the same in every proxy.
    service_entry: str = dataclasses.field(default="", repr=False)

    @property
    def name(self) -> str:
        """``outbound|9080|v1|reviews.default.svc.cluster.local``."""
        return f"outbound|{self.port}|{self.subset or ''}|{self.host}"

    def __str__(self) -> str:
        return self.name


class Mirror(NamedTuple):
    """A mirror target and the percentage of requests (0 < p ≤ 100) copied to it."""

    cluster: ClusterKey
    percentage: float


@dataclasses.dataclass(frozen=True, slots=True)
class Forward:
    """Send the request upstream.

    ``path`` is the path and query as sent upstream; ``original_path`` is set (to the path and
    query as received) when the rule rewrites the URI, for ``x-envoy-original-path``. ``authority``
    is the Host to send. ``timeout`` and ``retry`` are effective values: the rule's, else the
    mesh defaults (``retry.retry_on`` is filled with Istio's default list when the rule left it
    unset); ``None`` means no timeout / no retries.
    """

    cluster: ClusterKey
    virtual_service: VirtualService | None = dataclasses.field(repr=False, compare=False)
    route: HTTPRoute | None = dataclasses.field(repr=False, compare=False)
    route_name: str
    path: str
    authority: str
    match: HTTPMatchRequest | None = dataclasses.field(default=None, repr=False, compare=False)
    original_path: str | None = None
    request_headers: HeaderPlan = EMPTY_PLAN
    response_headers: HeaderPlan = EMPTY_PLAN
    mirrors: tuple[Mirror, ...] = ()
    timeout: float | None = None
    retry: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Passthrough:
    """ALLOW_ANY: forward to the original destination; no timeout, no retries."""

    route_name: ClassVar[str] = ALLOW_ANY_ROUTE
    cluster_name: ClassVar[str] = PASSTHROUGH_CLUSTER
    timeout: ClassVar[None] = None
    retry: ClassVar[None] = None

    host: str
    port: int


@dataclasses.dataclass(frozen=True, slots=True)
class LocalReply:
    """The proxy answers: ``headers`` are final (Location, content-type, route header ops)."""

    flags: ClassVar[str] = ""

    status: int
    body: bytes
    headers: Headers
    details: str
    route_name: str
    virtual_service: VirtualService | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    route: HTTPRoute | None = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True, slots=True)
class NoRoute:
    """No virtual host or no rule matched: 404, empty body, flag ``NR``."""

    status: ClassVar[int] = 404
    body: ClassVar[bytes] = b""
    headers: ClassVar[Headers] = ()
    flags: ClassVar[str] = "NR"
    details: ClassVar[str] = "route_not_found"
    route_name: ClassVar[str] = ""

    #: The VirtualService whose rules all failed to match (``None``: no virtual host, or a
    #: gateway virtual host).
    virtual_service: VirtualService | None = dataclasses.field(
        default=None, repr=False, compare=False
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterNotFound:
    """The matched rule points at a cluster that does not exist: 503, empty body, flag ``NC``.

    ``headers`` carries the route's response header operations, which Envoy applies to this
    local reply too.
    """

    status: ClassVar[int] = 503
    body: ClassVar[bytes] = b""
    flags: ClassVar[str] = "NC"
    details: ClassVar[str] = "cluster_not_found"

    cluster: ClusterKey
    virtual_service: VirtualService | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    route: HTTPRoute | None = dataclasses.field(default=None, repr=False, compare=False)
    route_name: str = ""
    headers: Headers = ()


Decision = Forward | Passthrough | LocalReply | NoRoute | ClusterNotFound
