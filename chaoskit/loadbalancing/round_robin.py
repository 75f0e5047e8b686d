"""ROUND_ROBIN: smooth weighted round robin (nginx's algorithm).

Envoy runs an EDF scheduler for unequal weights and a plain counter for equal ones; smooth
weighted round robin gives the same long-run shares with one rule for both cases: each pick
adds every host's weight to its running credit, takes the host with the most credit and charges
it the total weight. With equal weights that is a strict rotation (any N consecutive picks hit
each of N hosts once); with weights 3:1 every cycle of 4 picks holds exactly 3 and 1, spread
out (a a b a) rather than in bursts.

Credit is kept per ``UpstreamHost.key`` and rebuilt from the hosts of each call, so the state
survives hosts being added, removed or ejected between calls: a host that disappears loses its
credit, and one that (re)appears starts from zero.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from chaoskit.loadbalancing._weights import weight_of
from chaoskit.loadbalancing.base import UpstreamHost

#: How a scheduler weighs a host at the moment of a pick.
WeightFn = Callable[[UpstreamHost], float]


class RoundRobin:
    """Weighted round robin; ``weight`` lets LEAST_REQUEST reuse it with load-scaled weights.

    The pick is deterministic and ignores ``rng`` and ``hash_key``. Ties go to the host listed
    first, so a fresh balancer starts with ``hosts[0]``.
    """

    def __init__(self, weight: WeightFn = weight_of) -> None:
        self._weight = weight
        self._credit: dict[str, float] = {}

    def choose(
        self, hosts: Sequence[UpstreamHost], rng: random.Random, hash_key: int | None = None
    ) -> UpstreamHost | None:
        if not hosts:
            return None
        old = self._credit
        credit: dict[str, float] = {}
        total: float = 0
        best, best_credit = hosts[0], float("-inf")
        for host in hosts:
            w = self._weight(host)
            total += w
            # Two entries with one key share their credit (and so their weights add up).
            c = credit[host.key] if host.key in credit else old.get(host.key, 0)
            c = credit[host.key] = c + w
            if c > best_credit:
                best, best_credit = host, c
        credit[best.key] -= total
        self._credit = credit  # stale keys (hosts gone since the last call) are dropped here
        return best
