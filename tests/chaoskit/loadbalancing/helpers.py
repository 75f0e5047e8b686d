"""Host lists and a binomial bound shared by the load-balancing tests."""

import math

from chaoskit.loadbalancing import (
    LeastRequest,
    LoadBalancer,
    Maglev,
    RandomChoice,
    RingHash,
    RoundRobin,
    UpstreamHost,
)

#: One factory per strategy, for the tests that every balancer must pass.
BALANCERS: dict[str, type[LoadBalancer]] = {
    "round_robin": RoundRobin,
    "random": RandomChoice,
    "least_request": LeastRequest,
    "ring_hash": RingHash,
    "maglev": Maglev,
}


def make_hosts(n: int, weights: list[int] | None = None) -> list[UpstreamHost]:
    """``n`` hosts ``10.0.0.1:8080``, ``10.0.0.2:8080``, … with the given weights (default 1)."""
    ws = weights or [1] * n
    return [UpstreamHost(f"10.0.0.{i + 1}", 8080, weight=ws[i]) for i in range(n)]


def binomial_bounds(n: int, p: float, sigmas: float = 4.5) -> tuple[float, float]:
    """``n·p ± sigmas·σ`` with ``σ = sqrt(n·p·(1-p))``: a count outside it has probability
    below 1e-5 (4.5σ) for a fair implementation, so a failure means a biased balancer."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd
