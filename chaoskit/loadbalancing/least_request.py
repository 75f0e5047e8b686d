"""LEAST_REQUEST (and its deprecated alias LEAST_CONN): prefer hosts with fewer requests in flight.

Envoy has two modes. With equal weights it uses "power of two choices": draw two hosts at
random and keep the less loaded one, which avoids the herd effect of always picking the global
minimum while still steering away from busy hosts. With unequal weights it runs weighted round
robin where each host's weight is divided by ``(active_requests + 1) ** active_request_bias``
(bias 1.0 by default), recomputed at every pick so that load shifts the shares at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from chaoskit.loadbalancing._weights import all_equal, weight_of
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.loadbalancing.round_robin import RoundRobin

#: Envoy's ``active_request_bias`` default, which Istio does not change.
ACTIVE_REQUEST_BIAS = 1.0


def load_scaled_weight(host: UpstreamHost) -> float:
    """Envoy's effective weight in weighted least-request mode."""
    return weight_of(host) / math.pow(host.active_requests + 1, ACTIVE_REQUEST_BIAS)


class LeastRequest:
    """P2C for equal weights, else load-scaled weighted round robin; reads ``active_requests``.

    P2C draws two *distinct* hosts (Envoy may draw one twice; distinct draws make "the less
    loaded of two" hold for every pick); on a tie the first drawn wins.
    """

    def __init__(self) -> None:
        self._weighted = RoundRobin(weight=load_scaled_weight)

    def choose(
        self, hosts: Sequence[UpstreamHost], rng: random.Random, hash_key: int | None = None
    ) -> UpstreamHost | None:
        if not hosts:
            return None
        if not all_equal(hosts):
            return self._weighted.choose(hosts, rng)
        if len(hosts) == 1:
            return hosts[0]
        i = rng.randrange(len(hosts))
        j = rng.randrange(len(hosts) - 1)
        first, second = hosts[i], hosts[j + 1 if j >= i else j]
        return second if second.active_requests < first.active_requests else first
