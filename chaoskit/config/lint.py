"""Warnings for configurations that are legal but almost certainly not what was meant.

Each check is a small function over frozen resources; none of them changes behaviour. They are the
lessons users of Istio keep learning the hard way (each one, with its fix, in docs/configuration.md
§13): a fault with no percentage never fires, retries that cannot fit in the route timeout,
outlier detection that can never eject with few endpoints. Rules hidden behind earlier ones are
found by :mod:`.analyzers.matches`.
"""

from __future__ import annotations

from chaoskit.config.durations import format_duration
from chaoskit.config.http_route import HTTPRetry, HTTPRoute
from chaoskit.config.issues import Issues
from chaoskit.config.virtual_service import VirtualService


def _warn(
    issues: Issues,
    vs: VirtualService,
    route: HTTPRoute,
    field: str,
    message: str,
    *,
    code: str = "",
) -> None:
    path = f"spec.http[{route.index}]" + (f".{field}" if field else "")
    issues.warning(route.location, vs.ref, path, message, code=code)


def lint_virtual_service(
    vs: VirtualService,
    default_timeout: float | None,
    default_retry: HTTPRetry | None,
    issues: Issues,
) -> None:
    """Per-VirtualService lints; defaults are the mesh's (``classic``: 15 s, no retries;
    docs/configuration.md §3)."""
    for route in vs.http:
        _lint_retries(vs, route, default_timeout, default_retry, issues)
        _lint_weights(vs, route, issues)
        _lint_fault(vs, route, issues)


def _lint_retries(
    vs: VirtualService,
    route: HTTPRoute,
    default_timeout: float | None,
    default_retry: HTTPRetry | None,
    issues: Issues,
) -> None:
    if not route.route:
        return
    retry = route.retries if route.retries is not None else default_retry
    timeout = route.timeout if route.timeout is not None else default_timeout
    if retry is None or retry.attempts <= 0 or retry.per_try_timeout is None or timeout is None:
        return
    where = "retries.perTryTimeout" if route.retries is not None else ""
    timeout_text = format_duration(timeout) + (
        "" if route.timeout is not None else " (mesh default)"
    )
    per_try = retry.per_try_timeout
    if per_try >= timeout:
        _warn(
            issues,
            vs,
            route,
            where,
            f"perTryTimeout {format_duration(per_try)} >= route timeout {timeout_text}: "
            "the route times out before any retry can start",
        )
        return
    tries = retry.attempts + 1
    if tries * per_try > timeout:
        fit = int(timeout // per_try)
        _warn(
            issues,
            vs,
            route,
            where,
            f"{tries} attempts × perTryTimeout {format_duration(per_try)} = "
            f"{format_duration(tries * per_try)} exceeds the route timeout {timeout_text}: "
            f"at most {fit} attempt{'s' if fit != 1 else ''} can time out before the route does",
        )


def _lint_weights(vs: VirtualService, route: HTTPRoute, issues: Issues) -> None:
    if len(route.route) < 2:
        return
    total = sum(d.weight for d in route.route)
    if total not in (0, 100):
        shares = ", ".join(f"{d.weight * 100 / total:.4g}%" for d in route.route)
        _warn(
            issues,
            vs,
            route,
            "route",
            f"weights sum to {total}, not 100 (legal since Istio 1.15; traffic splits {shares})",
        )


def _lint_fault(vs: VirtualService, route: HTTPRoute, issues: Issues) -> None:
    fault = route.fault
    if fault is None:
        return
    if fault.abort is not None and route.retries is not None and route.retries.attempts > 0:
        _warn(
            issues,
            vs,
            route,
            "fault.abort",
            "aborts injected by a VirtualService fault are never retried: the fault filter runs "
            "before the router (istio#13705); use an UpstreamFault to exercise these retries",
        )
    if (
        fault.delay is not None
        and route.timeout is not None
        and fault.delay.fixed_delay >= route.timeout
    ):
        _warn(
            issues,
            vs,
            route,
            "fault.delay",
            f"the injected delay ({format_duration(fault.delay.fixed_delay)}) does not count "
            f"against this route's timeout ({format_duration(route.timeout)}): the route timeout "
            "starts after the delay, so it will not fire because of it",
        )
