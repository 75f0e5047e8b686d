"""What the steps of the request path share: one :class:`Services` per
:class:`~chaoskit.proxy.pipeline.Pipeline`.

Each step (fault filter, router, upstream request, passthrough, mirror) holds the same object,
so a new seed or configuration reaches all of them at once; only the pipeline's configuration
methods change it, between requests (the proxy loop runs one thing at a time).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable

from chaoskit.clock import Clock
from chaoskit.clusters import ClusterManager
from chaoskit.config.mesh import Mesh
from chaoskit.faults import FaultStates
from chaoskit.proxy.forwarding import UpstreamSender
from chaoskit.proxy.loops import LoopGuard
from chaoskit.rng import Seeds
from chaoskit.stats import Stats

Sleep = Callable[[float], Awaitable[object]]


@dataclasses.dataclass(slots=True)
class Services:
    seeds: Seeds
    client: UpstreamSender
    clock: Clock
    #: every wait the path makes on purpose (a fault delay, a back-off) goes through here, so
    #: socket-free tests see and control it (:class:`chaoskit.testing.FakeSleep`)
    sleep: Sleep
    stats: Stats
    clusters: ClusterManager
    fault_states: FaultStates
    loops: LoopGuard
    #: the configuration requests are routed with now
    mesh: Mesh
    #: may a body still arriving with its head stream to the client? (only where mitmproxy
    #: was patched to send it: :mod:`chaoskit.proxy.response_stream`)
    streaming: bool = False

    def stream(self, name: str) -> random.Random:
        """The seeded random stream ``name`` (:class:`chaoskit.rng.Seeds`)."""
        return self.seeds.stream(name)
