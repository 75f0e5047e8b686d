"""Turn the rule a request matched into a decision: forward, redirect or direct response.

Istio's ``TranslateRoute`` in one pass over a matched ``(VirtualService, HTTPRoute, match)``:
weighted destination pick, cluster lookup (503 NC when it does not exist), rewrites, header
plans, mirrors and the effective timeout and retry policy.

Authority precedence (``route.go``): ``rewrite.authority`` > a rule-level ``host`` /
``:authority`` header > a destination-level one. Envoy lets the route-level rewrite win over a
weighted cluster's, and Istio makes single destinations behave the same way.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from chaoskit.config.http_route import (
    DEFAULT_RETRY_ON,
    HTTPMirrorPolicy,
    HTTPRetry,
    HTTPRoute,
)
from chaoskit.config.match import HTTPMatchRequest
from chaoskit.config.mesh_config import MeshDefaults
from chaoskit.config.virtual_service import VirtualService
from chaoskit.routing import rewrite
from chaoskit.routing.decision import (
    ClusterNotFound,
    Decision,
    Forward,
    LocalReply,
    Mirror,
    NoRoute,
)
from chaoskit.routing.headers import (
    HeaderContext,
    HeaderPlan,
    apply,
    authority_of,
    compose,
)
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.scope import Scope

DIRECT_RESPONSE = "direct_response"


def route_name(route: HTTPRoute, match: HTTPMatchRequest | None) -> str:
    """``<http.name>.<match.name>``, ``<http.name>`` or ``""``, exactly as Istio builds it."""
    name = route.name or ""
    if match is not None and match.name:
        name = f"{name}.{match.name}"
    return name


def effective_retry(retries: HTTPRetry | None, defaults: MeshDefaults) -> HTTPRetry | None:
    """The rule's policy (``attempts: 0`` = none, unset ``retryOn`` = Istio's default list),
    else the mesh default."""
    if retries is None:
        return defaults.retry
    if retries.attempts <= 0:
        return None
    if retries.retry_on is None:
        return dataclasses.replace(retries, retry_on=DEFAULT_RETRY_ON)
    return retries


class Weighted(Protocol):
    """A weighted destination: an HTTP route's, or a TCP rule's."""

    @property
    def weight(self) -> int: ...


W = TypeVar("W", bound=Weighted)


def pick(destinations: Sequence[W], rng: random.Random) -> W:
    """Envoy's weighted-cluster pick (HTTP routes and TCP proxies alike): one destination takes
    all traffic; otherwise weight-0 destinations are dropped and a random value walks the
    cumulative weights."""
    if len(destinations) == 1:
        return destinations[0]
    live = [d for d in destinations if d.weight > 0] or list(destinations)
    weights = [d.weight or 1 for d in live]  # all-zero is invalid config: share equally
    value = rng.randrange(sum(weights))
    for dest, weight in zip(live, weights, strict=True):
        if value < weight:
            return dest
        value -= weight
    return live[-1]  # unreachable


def mirrors(policies: Sequence[HTTPMirrorPolicy], scope: Scope) -> tuple[Mirror, ...]:
    """Mirror targets with a positive percentage whose cluster exists (Envoy silently skips a
    shadow to a missing cluster)."""
    out = []
    for p in policies:
        key, found = scope.cluster(p.destination)
        if found and p.percentage > 0:
            out.append(Mirror(key, min(p.percentage, 100.0)))
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything :func:`decide` needs besides the rule and the request."""

    scope: Scope
    defaults: MeshDefaults
    headers: HeaderContext
    tls: bool = False


def _local_reply(
    ctx: RuleContext,
    vs: VirtualService,
    route: HTTPRoute,
    name: str,
    status: int,
    body: bytes,
    base: list[tuple[str, str]],
) -> LocalReply:
    plan = HeaderPlan.of(route.headers.response if route.headers else None)
    headers = tuple(apply(plan, base, ctx.headers))
    return LocalReply(status, body, headers, DIRECT_RESPONSE, name, vs, route)


def _redirect(
    ctx: RuleContext,
    vs: VirtualService,
    route: HTTPRoute,
    match: HTTPMatchRequest,
    req: RequestInfo,
) -> LocalReply:
    assert route.redirect is not None
    location = rewrite.redirect_location(
        route.redirect,
        scheme=req.scheme,
        authority=req.authority,
        path=req.path,
        query=req.query,
        match=match,
        listener_port=ctx.scope.port,
        tls=ctx.tls,
    )
    name = route_name(route, match)
    code = route.redirect.redirect_code
    return _local_reply(ctx, vs, route, name, code, b"", [("location", location)])


def _direct(
    ctx: RuleContext,
    vs: VirtualService,
    route: HTTPRoute,
    match: HTTPMatchRequest,
    req: RequestInfo,
) -> LocalReply:
    assert route.direct_response is not None
    status, body = route.direct_response.status, route.direct_response.body or b""
    base: list[tuple[str, str]] = []
    if status == 201 or 300 <= status < 400:  # Envoy adds Location for these
        base.append(
            ("location", rewrite.request_url(req.scheme, req.authority, req.path, req.query))
        )
    if body:
        base.append(("content-type", "text/plain"))
    return _local_reply(ctx, vs, route, route_name(route, match), status, body, base)


def decide(
    ctx: RuleContext,
    vs: VirtualService,
    route: HTTPRoute,
    match: HTTPMatchRequest,
    req: RequestInfo,
    rng: random.Random,
) -> Decision:
    """The decision for a request that matched ``match`` of ``route``."""
    if route.redirect is not None:
        return _redirect(ctx, vs, route, match, req)
    if route.direct_response is not None:
        return _direct(ctx, vs, route, match, req)
    name = route_name(route, match)
    if not route.route:  # no action at all: invalid config that validation reports
        return NoRoute(vs)
    dest = pick(route.route, rng)
    cluster, found = ctx.scope.cluster(dest.destination)
    weighted = len(route.route) > 1
    top, own = route.headers, dest.headers
    req_plan = compose(
        HeaderPlan.of(top.request if top else None),
        HeaderPlan.of(own.request if own else None),
        weighted=weighted,
    )
    resp_plan = compose(
        HeaderPlan.of(top.response if top else None),
        HeaderPlan.of(own.response if own else None),
        weighted=weighted,
    )
    if not found:
        headers = tuple(apply(resp_plan, [], ctx.headers))
        return ClusterNotFound(cluster, vs, route, name, headers)

    original = rewrite.join(req.path, req.query)
    path, original_path = original, None
    rw = route.rewrite
    if rw is not None and rw.uri_regex_rewrite is not None:
        path = rewrite.regex_rewrite(req.path, req.query, rw.uri_regex_rewrite)
    elif rw is not None and rw.uri:
        path = rewrite.prefix_rewrite(req.path, req.query, match, rw.uri)
    if rw is not None and (rw.uri or rw.uri_regex_rewrite is not None):
        original_path = original
    authority = (
        (rw.authority if rw is not None else None)
        or authority_of(top.request if top else None)
        or authority_of(own.request if own else None)
        or req.authority
    )
    timeout = route.timeout if route.timeout is not None else ctx.defaults.route_timeout
    return Forward(
        cluster=cluster,
        virtual_service=vs,
        route=route,
        route_name=name,
        path=path,
        authority=authority,
        match=match,
        original_path=original_path,
        request_headers=req_plan,
        response_headers=resp_plan,
        mirrors=mirrors(route.mirrors, ctx.scope),
        timeout=timeout,
        retry=effective_retry(route.retries, ctx.defaults),
        fault=route.fault,
    )
