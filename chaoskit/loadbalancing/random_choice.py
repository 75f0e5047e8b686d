"""RANDOM: an independent random pick per request, the only strategy with no memory."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence

from chaoskit.loadbalancing._weights import all_equal, weight_of
from chaoskit.loadbalancing.base import UpstreamHost


class RandomChoice:
    """Uniform over ``hosts``, or proportional to ``weight`` when weights differ (as Envoy).

    Integer draws (``randrange``) keep the pick exact and reproducible from the seed.
    """

    def choose(
        self, hosts: Sequence[UpstreamHost], rng: random.Random, hash_key: int | None = None
    ) -> UpstreamHost | None:
        if not hosts:
            return None
        if all_equal(hosts):
            return hosts[rng.randrange(len(hosts))]
        cumulative = list(itertools.accumulate(weight_of(h) for h in hosts))
        return hosts[bisect.bisect_right(cumulative, rng.randrange(cumulative[-1]))]
