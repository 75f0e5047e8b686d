"""Resilience assertions that explain a failure with the evidence: what each request did.

This module is registered for pytest's assertion rewriting (``pytest_plugin/__init__.py``), and
every helper hides its own frame, so a failure points at the test's line and reads like::

    AssertionError: expected 1 retry of payments, saw 0:
      2 requests to payments.default.svc.cluster.local:
        POST /pay → 503 in 3 ms (1 attempt: 127.0.0.1:9301 response 503)
        …

Definitions (docs/pytest.md repeats them):

- a request's *retries* are its upstream attempts minus one;
- a request *timed out* when it carries Envoy's ``UT`` flag (route timeout, or the last per-try
  timeout) or one of its attempts hit its per-try timeout;
- a request *overflowed* when it carries ``UO`` or an attempt was refused as an overflow;
- a host was *ejected* when one of its clusters counts an outlier-detection ejection;
- the *error rate* is the share of requests answered with a 5xx status;
- ``p95`` is the nearest-rank 95th percentile of the requests' durations at the proxy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chaoskit.config.resource import Resource
from chaoskit.records import AttemptOutcome, ResponseFlag

from .evidence import (
    DeclaredFault,
    Records,
    declared_faults,
    grouped_listing,
    listing,
    plural,
    record_matches_host,
)

if TYPE_CHECKING:
    from chaoskit.records import Record

    from .handle import Chaos


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


def _elsewhere(chaos: Chaos) -> list[str]:
    """What to say when no request went to a host: where traffic did go, or that none came."""
    everything = chaos.records
    if not everything:
        return [
            "  the proxy saw no requests in this test: send traffic through chaos.session(), "
            "chaos.url or chaos.env (a client that does not use the proxy bypasses every fault)"
        ]
    return ["  requests this test made went elsewhere:", *grouped_listing(everything, "    ")]


def _of_host(chaos: Chaos, host: str) -> Records:
    return chaos.records.where(host=host)


# -- faults -------------------------------------------------------------------------------------


def _wanted_faults(chaos: Chaos, fault: Resource | Mapping[str, Any] | str) -> list[DeclaredFault]:
    """The declared faults ``fault`` names; a fault of the base config is found there."""
    if isinstance(fault, Resource):
        refs = {fault.ref}
    elif isinstance(fault, Mapping):
        meta = fault.get("metadata") or {}
        refs = {f"{fault.get('kind', '')}/{meta.get('namespace', 'default')}/{meta.get('name')}"}
    else:
        refs = {fault}
    candidates = chaos.declared_faults
    if not chaos.ended:
        candidates += [
            d for d in declared_faults(chaos.proxy.validation.resources) if d not in candidates
        ]

    def named(d: DeclaredFault) -> bool:
        ref = d.resource.ref
        short = {ref, ref.split("/", 1)[1], d.resource.name, d.ref}
        return bool(refs & short)

    return [d for d in candidates if named(d)]


def _fired(d: DeclaredFault, records: Sequence[Record]) -> list[Record]:
    return [r for r in records if d.fired_in(r)]


def _to_host(r: Record, d: DeclaredFault) -> bool:
    return record_matches_host(r, d.hosts)


def _never_fired(d: DeclaredFault, records: Records) -> list[str]:
    to_host = [r for r in records if _to_host(r, d)]
    if not to_host:
        return [f"  {d.describe()} never fired: no request went to {d.host}"]
    return [
        f"  {d.describe()} never fired: {plural(len(to_host), 'request')} to {d.host}:",
        *listing(to_host, "    "),
    ]


def assert_fired(chaos: Chaos, fault: Resource | Mapping[str, Any] | str | None = None) -> None:
    """``fault`` acted on at least one request; with ``None``, every declared fault did."""
    __tracebackhide__ = True
    records = chaos.records
    if fault is None:
        wanted = chaos.declared_faults
        assert wanted, "expected the faults of this test to fire, but it declared none"
    else:
        wanted = _wanted_faults(chaos, fault)
        shown = repr(fault) if isinstance(fault, str) else getattr(fault, "ref", None) or fault
        known = [d.ref for d in chaos.declared_faults]
        assert wanted, f"expected {shown} to fire, but no such fault is in this test's config " + (
            f"(it declared: {', '.join(known)})" if known else "(it declared no faults)"
        )
    silent = [d for d in wanted if not _fired(d, records)]
    if fault is not None and len(silent) < len(wanted):
        silent = []  # a VirtualService with several faulted rules: one firing is enough
    lines = [
        f"expected {plural(len(wanted), 'fault')} to fire, {len(silent)} never did:"
        if len(wanted) > 1
        else f"expected {wanted[0].describe()} to fire, it never did:"
    ]
    if len(wanted) > 1:
        for d in silent:
            lines += _never_fired(d, records)
    elif silent:
        to_host = [r for r in records if _to_host(r, silent[0])]
        lines += (
            grouped_listing(to_host)
            if to_host
            else [f"  saw no requests to {silent[0].host}", *_elsewhere(chaos)]
        )
    never_fired = len(silent)
    assert never_fired == 0, "\n".join(lines)


def assert_no_requests_bypassed(chaos: Chaos) -> None:
    """Every fault this test declared fired, and every host with declared faults saw at least
    one request through the proxy (proof that the client under test used the proxy)."""
    __tracebackhide__ = True
    records = chaos.records
    declared = chaos.declared_faults
    problems: list[list[str]] = []
    hosts_done: set[frozenset[str]] = set()
    for d in declared:
        if d.hosts not in hosts_done and not [r for r in records if _to_host(r, d)]:
            problems.append([f"  no request to {d.host} went through the proxy"])
        hosts_done.add(d.hosts)
    for d in declared:
        if not _fired(d, records) and [r for r in records if _to_host(r, d)]:
            problems.append(_never_fired(d, records))
    if not declared and not records:
        problems.append(["  the proxy saw no requests in this test"])
    lines = [
        f"{plural(len(problems), 'problem')}: traffic bypassed the proxy "
        "or a declared fault never applied:",
        *(line for p in problems for line in p),
    ]
    if records:
        lines += ["  requests this test made:", *grouped_listing(records, "    ")]
    else:
        lines.append(
            "  hint: send traffic through chaos.session(), chaos.url or chaos.env; a client "
            "with its own proxy settings (or NO_PROXY) bypasses every fault"
        )
    problem_count = len(problems)
    assert problem_count == 0, "\n".join(lines)


# -- retries ------------------------------------------------------------------------------------


def assert_retried(chaos: Chaos, host: str, times: int | None = None) -> None:
    """At least one request to ``host`` was retried exactly ``times`` times (attempts − 1);
    ``times=None`` means at least once."""
    __tracebackhide__ = True
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        raise TypeError(f"times must be a whole number >= 0 or None, not {times!r}")
    wanted = "a retry" if times is None else plural(times, "retry", "retries")
    mine = _of_host(chaos, host)
    assert mine, "\n".join(
        [f"expected {wanted} of {host}, saw no requests to {host}:", *_elsewhere(chaos)]
    )
    seen = sorted({r.retries for r in mine})
    lines = [f"expected {wanted} of {host}, saw {_and([str(n) for n in seen])}:"]
    lines += grouped_listing(mine)
    if seen == [0]:
        hint = "  hint: no request was retried: does the route set retries (attempts, retryOn)?"
        if any("abort" in r.faults for r in mine):
            hint += " A VirtualService fault abort is never retried; use chaos.fault() instead."
        lines.append(hint)
    if times is None:
        assert max(seen) >= 1, "\n".join(lines)
    else:
        assert times in seen, "\n".join(lines)


def assert_not_retried(chaos: Chaos, host: str) -> None:
    """Requests went to ``host`` and none of them was retried."""
    __tracebackhide__ = True
    mine = _of_host(chaos, host)
    assert mine, "\n".join(
        [
            f"expected requests to {host} without retries, saw no requests to {host}:",
            *_elsewhere(chaos),
        ]
    )
    retried = [r for r in mine if r.retries]
    lines = [
        f"expected no retries of {host}, saw {plural(len(retried), 'request')} retried "
        f"(of {len(mine)}):",
        *grouped_listing(mine),
    ]
    retried_count = len(retried)
    assert retried_count == 0, "\n".join(lines)


# -- timeouts, ejections, overflows ---------------------------------------------------------------


def _timed_out(r: Record) -> bool:
    return ResponseFlag.UT in r.flags or any(
        a.outcome == AttemptOutcome.PER_TRY_TIMEOUT for a in r.attempts
    )


def assert_timed_out(chaos: Chaos, host: str) -> None:
    """A request to ``host`` hit its route timeout (``UT``) or an attempt its per-try timeout."""
    __tracebackhide__ = True
    wanted = f"expected a request to {host} to time out (flag UT or a per-try timeout)"
    mine = _of_host(chaos, host)
    assert mine, "\n".join([f"{wanted}, saw no requests to {host}:", *_elsewhere(chaos)])
    hits = [r for r in mine if _timed_out(r)]
    assert hits, "\n".join([f"{wanted}, saw none time out:", *grouped_listing(mine)])


def _counter_lines(counters: Mapping[str, float], words: Sequence[str]) -> list[str]:
    picked = {k: v for k, v in counters.items() if any(w in k for w in words)}
    return [f"    {k} = {v:g}" for k, v in sorted(picked.items())]


def assert_ejected(chaos: Chaos, host: str) -> None:
    """Outlier detection ejected an endpoint of ``host`` (an ``outlier_detection.ejections*``
    counter of one of its clusters is above zero)."""
    __tracebackhide__ = True
    counters = chaos.stats(host)
    ejections = {k: v for k, v in counters.items() if "outlier_detection" in k and "ejection" in k}
    ejected = sum(v for v in ejections.values() if v > 0)
    if ejected:
        return
    lines = [f"expected outlier detection to eject an endpoint of {host}, saw no ejection:"]
    if ejections:
        lines += ["  counters:", *_counter_lines(ejections, ("ejection",))]
    else:
        lines.append(
            f"  no outlier_detection counters for {host}: is outlierDetection set in its "
            "DestinationRule?"
        )
    mine = _of_host(chaos, host)
    lines += grouped_listing(mine) if mine else _elsewhere(chaos)
    assert ejected > 0, "\n".join(lines)


def _overflowed(r: Record) -> bool:
    return ResponseFlag.UO in r.flags or any(
        a.outcome == AttemptOutcome.OVERFLOW for a in r.attempts
    )


def assert_overflowed(chaos: Chaos, host: str) -> None:
    """The circuit breaker of ``host`` refused a request: a record carries ``UO`` (or an attempt
    overflowed), or an ``*overflow*`` counter of its clusters is above zero."""
    __tracebackhide__ = True
    mine = _of_host(chaos, host)
    counters = chaos.stats(host)
    overflows = {k: v for k, v in counters.items() if "overflow" in k}
    refused = sum(1 for r in mine if _overflowed(r)) + sum(v for v in overflows.values() if v > 0)
    if refused:
        return
    lines = [f"expected the circuit breaker of {host} to overflow (flag UO), saw none:"]
    if overflows:
        lines += ["  counters:", *_counter_lines(overflows, ("overflow",))]
    lines += grouped_listing(mine) if mine else _elsewhere(chaos)
    assert refused > 0, "\n".join(lines)


# -- latency and errors ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def assert_p95(chaos: Chaos, host: str, below: float) -> None:
    """The 95th percentile of the durations of requests to ``host`` is below ``below`` seconds."""
    __tracebackhide__ = True
    wanted = f"expected p95 latency of {host} below {_ms(below)}"
    mine = _of_host(chaos, host)
    assert mine, "\n".join([f"{wanted}, saw no requests to {host}:", *_elsewhere(chaos)])
    p95 = percentile([r.duration for r in mine], 95)
    slowest = sorted(mine, key=lambda r: r.duration, reverse=True)[:5]
    lines = [
        f"{wanted}, saw {_ms(p95)} over {plural(len(mine), 'request')}; slowest:",
        *listing(slowest, "    "),
    ]
    assert p95 < below, "\n".join(lines)


def assert_error_rate(chaos: Chaos, host: str, below: float) -> None:
    """The share of requests to ``host`` answered 5xx is below ``below`` (a fraction, 0..1)."""
    __tracebackhide__ = True
    if isinstance(below, bool) or not isinstance(below, (int, float)) or not 0 <= below <= 1:
        raise ValueError(f"below must be a fraction from 0 to 1 (0.05 for 5%), not {below!r}")
    wanted = f"expected error rate of {host} below {_pct(below)}"
    mine = _of_host(chaos, host)
    assert mine, "\n".join([f"{wanted}, saw no requests to {host}:", *_elsewhere(chaos)])
    errors = [r for r in mine if r.status >= 500]
    rate = len(errors) / len(mine)
    lines = [
        f"{wanted}, saw {_pct(rate)} ({len(errors)} of {plural(len(mine), 'request')} "
        "answered 5xx):",
        *listing(errors, "    "),
    ]
    assert rate < below, "\n".join(lines)


__all__ = [
    "assert_ejected",
    "assert_error_rate",
    "assert_fired",
    "assert_no_requests_bypassed",
    "assert_not_retried",
    "assert_overflowed",
    "assert_p95",
    "assert_retried",
    "assert_timed_out",
    "percentile",
]
