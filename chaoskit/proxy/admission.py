"""Through a cluster's circuit breakers before each attempt: admitted at once, queued as a
pending request until a connection frees up, or refused (``503 UO``).

The decisions are :class:`~chaoskit.resilience.circuit_breaker.CircuitBreaker`'s (pure); this
module does the waiting: a queued request waits on a future that the request releasing a
connection resolves (:func:`wake`), in the order the breaker queued them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chaoskit.clusters import Cluster
from chaoskit.proxy.exchange import Exchange
from chaoskit.resilience.circuit_breaker import Overflow, Queued
from chaoskit.stats import Stats


async def admit(cluster: Cluster, ex: Exchange, stats: Stats) -> Overflow | Callable[[], None]:
    """Take a connection slot of ``cluster`` (maybe after waiting in the pending queue) and
    return what releases it, to call exactly once when the attempt ends (a streamed answer
    ends with its body); or the :class:`Overflow` when the breakers refuse (nothing is held
    then). A request that ends while queued (route timeout, client gone) leaves the queue and
    is counted ``upstream_rq_cancelled``."""
    admission = cluster.breaker.admit()
    if isinstance(admission, Overflow):
        stats.cluster_inc(cluster.name, "upstream_rq_pending_overflow")
        return admission
    ticket = admission.ticket
    if isinstance(admission, Queued):
        stats.cluster_inc(cluster.name, "upstream_rq_pending_total")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cluster.waiters[ticket] = waiter
        try:
            await waiter
        except BaseException:
            cluster.waiters.pop(ticket, None)
            wake(cluster, cluster.breaker.cancel(ticket))
            # No attempt existed yet (no endpoint chosen, nothing sent, no UpstreamFault
            # planned), so none is recorded; the note and Envoy's counter say what happened.
            stats.cluster_inc(cluster.name, "upstream_rq_cancelled")
            ex.notes.append(
                f"ended while queued for a connection to {cluster.name} (pending): "
                "no attempt was sent"
            )
            raise

    def release() -> None:
        wake(cluster, cluster.breaker.release(ticket))

    return release


def wake(cluster: Cluster, ticket: int | None) -> None:
    """Hand a freed connection to the next queued request still waiting for one."""
    while ticket is not None:
        waiter = cluster.waiters.pop(ticket, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
            return
        ticket = cluster.breaker.release(ticket)  # nobody waits on it any more: pass it on
