"""From a matched rule to a decision: names, retries, weighted picks, mirrors."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

from chaoskit.config.http_route import (
    DEFAULT_RETRY_ON,
    Destination,
    HTTPMirrorPolicy,
    HTTPRetry,
    HTTPRouteDestination,
)
from chaoskit.config.mesh_config import CLASSIC_DEFAULTS, ISTIO_CURRENT_DEFAULTS
from chaoskit.routing.actions import effective_retry, mirrors, pick, route_name
from chaoskit.routing.decision import ClusterKey, Mirror
from chaoskit.routing.scope import Scope

from .helpers import REVIEWS, build, entry, rule


def test_route_names_follow_istio() -> None:
    named = rule("name: r1\nroute: [{destination: {host: reviews}}]")
    anonymous = rule("route: [{destination: {host: reviews}}]")
    assert route_name(named, None) == "r1"
    assert route_name(named, entry("name: m1\nuri: {prefix: /}")) == "r1.m1"
    assert route_name(anonymous, entry("name: m1\nuri: {prefix: /}")) == ".m1"  # as Istio does
    assert route_name(anonymous, entry("uri: {prefix: /}")) == ""


def test_effective_retry() -> None:
    assert effective_retry(None, CLASSIC_DEFAULTS) is None
    assert effective_retry(None, ISTIO_CURRENT_DEFAULTS) == ISTIO_CURRENT_DEFAULTS.retry
    assert effective_retry(HTTPRetry(attempts=0), ISTIO_CURRENT_DEFAULTS) is None
    filled = effective_retry(HTTPRetry(attempts=3, per_try_timeout=1.0), CLASSIC_DEFAULTS)
    assert filled == HTTPRetry(attempts=3, per_try_timeout=1.0, retry_on=DEFAULT_RETRY_ON)
    explicit = HTTPRetry(attempts=1, retry_on=("5xx",))
    assert effective_retry(explicit, CLASSIC_DEFAULTS) is explicit


def d(subset: str, weight: int) -> HTTPRouteDestination:
    return HTTPRouteDestination(Destination("reviews", REVIEWS, subset), weight)


def test_pick_walks_cumulative_weights() -> None:
    dests = [d("a", 1), d("b", 0), d("c", 2)]
    rng = random.Random(5)
    counts = Counter(pick(dests, rng).destination.subset for _ in range(3000))
    assert "b" not in counts
    assert 900 <= counts["a"] <= 1100, counts  # p = 1/3: sd ≈ 26, well inside ±100


def test_pick_is_a_function_of_the_random_value() -> None:
    class Fixed(random.Random):
        def __init__(self, value: int) -> None:
            super().__init__(0)
            self.value = value

        def randrange(self, *args: object, **kw: object) -> int:  # type: ignore[override]
            return self.value

    dests = [d("a", 80), d("b", 20)]
    assert [pick(dests, Fixed(v)).destination.subset for v in (0, 79, 80, 99)] == [
        "a",
        "a",
        "b",
        "b",
    ]


def test_pick_with_all_zero_weights_shares_equally() -> None:
    rng = random.Random(1)
    counts = Counter(pick([d("a", 0), d("b", 0)], rng).destination.subset for _ in range(200))
    assert set(counts) == {"a", "b"}


def test_mirrors_resolve_and_drop() -> None:
    mesh = build()
    scope = Scope(mesh, "default", None, 9080)
    policies = [
        HTTPMirrorPolicy(Destination("reviews", REVIEWS, "v2"), 150.0),
        HTTPMirrorPolicy(Destination("reviews", REVIEWS, "v3"), 0.0),
        HTTPMirrorPolicy(Destination("ghost", "ghost.default.svc.cluster.local"), 50.0),
    ]
    assert mirrors(policies, scope) == (Mirror(ClusterKey(REVIEWS, 9080, "v2"), 100.0),)
    m = mirrors(policies[:1], scope)[0]
    assert (m.cluster, m.percentage) == (ClusterKey(REVIEWS, 9080, "v2"), 100.0)


def test_a_rule_without_any_action_does_not_crash() -> None:
    from chaoskit.routing.actions import RuleContext, decide
    from chaoskit.routing.decision import NoRoute
    from chaoskit.routing.headers import HeaderContext

    from .helpers import req

    broken = dataclasses.replace(rule("route: [{destination: {host: reviews}}]"), route=())
    ctx = RuleContext(Scope(build(), "default", None, 9080), CLASSIC_DEFAULTS, HeaderContext())
    match = entry("uri: {prefix: /}")
    d = decide(ctx, None, broken, match, req("http://reviews:9080/"), random.Random(0))  # type: ignore[arg-type]
    assert isinstance(d, NoRoute)
