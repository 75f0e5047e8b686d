"""The load-balancer protocol and the endpoint state it reads.

An :class:`UpstreamHost` is one endpoint of one cluster (``outbound|port|subset|host``). It is
mutable on purpose: the proxy loop updates ``active_requests`` as attempts start and finish, and
LEAST_REQUEST reads it. Every host object lives on the proxy's event-loop thread only.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol


@dataclasses.dataclass(eq=False)
class UpstreamHost:
    """One endpoint: where to connect, its LB weight and labels, and live counters."""

    address: str
    port: int
    weight: int = 1
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Attempts currently in flight to this host (LEAST_REQUEST reads this).
    active_requests: int = 0

    @property
    def key(self) -> str:
        """``address:port`` — how records, stats and ``/clusters`` name the host."""
        return f"{self.address}:{self.port}"


class LoadBalancer(Protocol):
    """Chooses one of ``hosts`` (already filtered to healthy ones) for the next attempt.

    ``hash_key`` is set for consistent hashing (``None`` when the request carries no key, which
    Envoy answers with a random host). ``rng`` is the cluster's seeded stream.
    """

    def choose(
        self, hosts: Sequence[UpstreamHost], rng: random.Random, hash_key: int | None = None
    ) -> UpstreamHost | None: ...


#: Envoy's ``host_selection_retry_max_attempts`` as Istio configures it.
HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5


def choose_avoiding(
    lb: LoadBalancer,
    hosts: Sequence[UpstreamHost],
    rng: random.Random,
    avoid: Collection[UpstreamHost] = (),
    hash_key: int | None = None,
) -> UpstreamHost | None:
    """Envoy's ``previous_hosts`` retry predicate: re-pick up to 5 times to avoid hosts already
    tried; if every pick lands on one, the last pick is used (a retry still happens)."""
    host = lb.choose(hosts, rng, hash_key)
    tries = 0
    while host is not None and host in avoid and tries < HOST_SELECTION_RETRY_MAX_ATTEMPTS:
        host = lb.choose(hosts, rng, hash_key)
        tries += 1
    return host
