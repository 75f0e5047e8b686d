"""Traffic mirroring (Istio's ``mirror`` / ``mirrors``, Envoy's ``request_mirror_policies``):
a fire-and-forget copy of the request to another cluster. Never awaited by the request, its
answer discarded; only the cluster's counters show it.
"""

from __future__ import annotations

import asyncio

from chaoskit.loadbalancing.base import choose_avoiding
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.forwarding import Headers, upstream_headers, with_host
from chaoskit.proxy.services import Services
from chaoskit.proxy.upstream import ResponseTooLarge, UpstreamFailure
from chaoskit.rng import draw_percentage
from chaoskit.routing.decision import Forward, Mirror


class Mirrors:
    def __init__(self, services: Services) -> None:
        self.s = services
        #: copies in flight (kept referenced so they are not garbage-collected)
        self.background: set[asyncio.Future[None]] = set()

    def send(self, ex: Exchange, fwd: Forward, mirror: Mirror, headers: Headers) -> None:
        """Start one copy, if this request is among the mirrored percentage and the cluster
        has a healthy endpoint that is not this proxy's own (non-Gateway) listener."""
        s = self.s
        if not draw_percentage(s.stream(f"mirror/{mirror.cluster.name}"), mirror.percentage):
            return
        cluster = s.clusters.get(mirror.cluster, ex.request.source.name)
        hosts = cluster.healthy_hosts(s.clock.monotonic()) if cluster is not None else []
        host = choose_avoiding(cluster.lb, hosts, cluster.rng) if cluster and hosts else None
        if cluster is None or host is None:
            return
        out = with_host(upstream_headers(ex, headers, attempt=None), fwd.authority)
        hop = s.loops.mirror_hop(ex, host.address, host.port)
        if hop is None:
            ex.notes.append(f"mirror to {host.key} skipped: it would loop into this proxy")
            return
        out += hop
        name, method, body = cluster.name, ex.request.method, ex.body

        async def copy() -> None:
            s.stats.cluster_inc(name, "upstream_rq_total")
            try:
                resp = await s.client.send(
                    method, cluster.scheme, host.address, host.port, fwd.path, out, body,
                    cluster.connect_timeout,
                )  # fmt: skip
                s.stats.cluster_inc(name, f"upstream_rq_{resp.status}")
            except UpstreamFailure:
                s.stats.cluster_inc(name, "upstream_cx_connect_fail")
            except ResponseTooLarge as e:  # discarded anyway; never an unretrieved exception
                s.stats.cluster_inc(name, f"upstream_rq_{e.status}")

        task = asyncio.ensure_future(copy())
        self.background.add(task)
        task.add_done_callback(self.background.discard)
