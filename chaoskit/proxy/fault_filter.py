"""Envoy's HTTP fault filter, as a VirtualService's ``fault`` configures it: a delay, then an
abort, each drawn per request with the route's percentage.

It runs before the router (envoy/source/extensions/filters/http/fault/fault_filter.cc), so an
aborted request never reaches a cluster: no circuit breaker, no retry, no outlier detection
sees it. Each route and cluster draws from its own seeded stream, so one route's traffic does
not shift another's faults.
"""

from __future__ import annotations

from chaoskit.config.http_route import GRPC_STATUS, HTTPFaultInjection
from chaoskit.proxy import replies
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.services import Services
from chaoskit.records import ResponseFlag
from chaoskit.rng import draw_percentage


async def apply(
    services: Services, ex: Exchange, fault: HTTPFaultInjection, stream_name: str
) -> Reply | None:
    """Delay (maybe), then abort (maybe): the abort's reply, or ``None`` to go on routing."""
    stream = services.stream(stream_name)
    if fault.delay is not None and draw_percentage(stream, fault.delay.percentage):
        ex.flags.add(ResponseFlag.DI)
        ex.faults.append("delay")
        services.stats.inc("fault.delays_injected")
        await services.sleep(fault.delay.fixed_delay)
    abort = fault.abort
    if abort is None or not draw_percentage(stream, abort.percentage):
        return None
    ex.faults.append("abort")
    services.stats.inc("fault.aborts_injected")
    if abort.grpc_status is not None:
        return replies.grpc_fault_abort(GRPC_STATUS[abort.grpc_status])
    return replies.fault_abort(abort.http_status or 500)
