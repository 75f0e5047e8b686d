"""Pure load balancing: which endpoint of a cluster serves the next attempt."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chaoskit.config.destination_rule import LoadBalancerSettings
from chaoskit.loadbalancing.base import (
    HOST_SELECTION_RETRY_MAX_ATTEMPTS,
    LoadBalancer,
    UpstreamHost,
    choose_avoiding,
)
from chaoskit.loadbalancing.consistent_hash import (
    Maglev,
    RingHash,
    hash_key_for,
    needs_new_cookie,
    new_cookie,
    stable_hash,
)
from chaoskit.loadbalancing.least_request import LeastRequest
from chaoskit.loadbalancing.random_choice import RandomChoice
from chaoskit.loadbalancing.round_robin import RoundRobin

#: ``loadBalancer.simple`` names → a factory for a fresh (stateful) balancer per cluster.
SIMPLE_LOAD_BALANCERS: Mapping[str, Callable[[], LoadBalancer]] = {
    "ROUND_ROBIN": RoundRobin,
    "RANDOM": RandomChoice,
    "LEAST_REQUEST": LeastRequest,
    "LEAST_CONN": LeastRequest,  # deprecated alias; the parser already stores LEAST_REQUEST
    # PASSTHROUGH sends to the address the client dialled, which the router handles before any
    # balancer runs; round robin only stands in for it should a host list reach a balancer.
    "PASSTHROUGH": RoundRobin,
}


def make_load_balancer(settings: LoadBalancerSettings | None) -> LoadBalancer:
    """A fresh balancer for one cluster: the consistent hash if set, else ``simple``.

    Unset settings, or an unset ``simple``, give LEAST_REQUEST (Istio's default since 1.14).

    Each call returns a fresh instance, because round robin and the hash tables keep state that
    belongs to one cluster. Raises :class:`ValueError` for an unknown ``simple`` name.
    """
    settings = settings or LoadBalancerSettings()
    if (ch := settings.consistent_hash) is not None:
        if ch.algorithm == "MAGLEV":
            return Maglev(ch.effective_table_size)
        return RingHash(ch.effective_minimum_ring_size)
    name = settings.effective_simple
    factory = SIMPLE_LOAD_BALANCERS.get(name)
    if factory is None:
        known = ", ".join(sorted(SIMPLE_LOAD_BALANCERS))
        raise ValueError(f"unknown load balancer {name!r} (known: {known})")
    return factory()


__all__ = [
    "HOST_SELECTION_RETRY_MAX_ATTEMPTS",
    "SIMPLE_LOAD_BALANCERS",
    "LeastRequest",
    "LoadBalancer",
    "Maglev",
    "RandomChoice",
    "RingHash",
    "RoundRobin",
    "UpstreamHost",
    "choose_avoiding",
    "hash_key_for",
    "make_load_balancer",
    "needs_new_cookie",
    "new_cookie",
    "stable_hash",
]
