"""Envoy's outlier detector for one cluster (Envoy ``arch_overview/upstream/outlier.rst`` and
``source/common/upstream/outlier_detection_impl.cc``; Istio's ``applyOutlierDetection``).

Passive health checking as Envoy's ``outlier_detection_impl.cc`` runs it, with only the
consecutive-error detectors Istio configures (success-rate and failure-percentage ejection stay
off). It is a pure state machine fed with explicit times: the proxy calls :meth:`report` with
each attempt's result and :meth:`healthy` before load balancing, so tests replay whole ejection
histories with made-up floats instead of sleeping.

Envoy's interval timer fires every ``interval`` after the detector starts. Here
:meth:`sweep` runs all sweeps due up to ``now`` (``report`` does so first), so the caller can call
it lazily on each request; long idle stretches are skipped in one step, not sweep by sweep.
Faithful details worth knowing: a threshold trips when a counter *reaches* it; the tripped
counter resets even when ``maxEjectionPercent`` blocks the ejection (``ejections_overflow``); an
ejected host stays out until the first sweep at least its ejection time after the ejection; the
ejection multiplier grows on each ejection (saturating once ``k × base ≥ max + base``) and drops
by one at each sweep the host spends un-ejected.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol, TypeAlias, TypeVar, get_args

from chaoskit.config.destination_rule import OutlierDetection

#: A local-origin result: ``connected`` is Envoy's LocalOriginConnectSuccess (a connection was
#: obtained, HTTP follows), ``success`` its final success (non-split mode: a 200).
LocalEvent: TypeAlias = Literal["connect-failure", "reset", "timeout", "success", "connected"]
#: An upstream HTTP status, or a local-origin result.
Event: TypeAlias = int | LocalEvent
EjectionType: TypeAlias = Literal[
    "consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure"
]
#: Non-split mode: what Envoy's ``resultToHttpCode`` turns a local result into.
_LOCAL_AS_STATUS = {"connect-failure": 503, "reset": 503, "timeout": 504, "success": 200}
_KINDS: tuple[str, ...] = get_args(EjectionType)
_GATEWAY_ERRORS = frozenset({502, 503, 504})
#: Envoy's ``max_ejection_time`` default; Istio leaves it unset, and Envoy requires it >= base.
MAX_EJECTION_TIME = 300.0


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


_H = TypeVar("_H", bound=_Keyed)


@dataclasses.dataclass(slots=True)
class _Monitor:
    """Envoy's per-host ``DetectorHostMonitorImpl``."""

    consecutive_5xx: int = 0
    consecutive_gateway_failure: int = 0
    consecutive_local_origin_failure: int = 0
    multiplier: int = 0
    num_ejections: int = 0
    ejected_at: float | None = None
    duration: float = 0.0
    #: While ejected: the index of the sweep that brings the host back.
    return_sweep: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Ejection:
    """A host just left the load-balancing set; ``until`` is the sweep that brings it back."""

    host: str
    reason: EjectionType
    at: float
    duration: float
    until: float
    multiplier: int


class OutlierDetector:
    """Consecutive-error ejection for one cluster's hosts, named by ``UpstreamHost.key``."""

    def __init__(self, settings: OutlierDetection, start: float, hosts: Iterable[str] = ()) -> None:
        self.settings = settings
        self.start = start
        self.interval = settings.effective_interval
        self.base_ejection_time = settings.effective_base_ejection_time
        self.max_ejection_time = max(MAX_EJECTION_TIME, self.base_ejection_time)
        self.split = settings.split_external_local_origin_errors
        self._hosts: dict[str, _Monitor] = {}
        self._next = 1  # index of the next sweep, at start + index × interval
        self._counters: Counter[str] = Counter()
        self.set_hosts(hosts)

    def set_hosts(self, keys: Iterable[str]) -> None:
        """The cluster's endpoints changed: survivors keep their state, new hosts start clean."""
        self._hosts = {k: self._hosts.get(k) or _Monitor() for k in keys}

    def is_ejected(self, key: str) -> bool:
        monitor = self._hosts.get(key)
        return monitor is not None and monitor.ejected_at is not None

    @property
    def ejections_active(self) -> int:
        return sum(m.ejected_at is not None for m in self._hosts.values())

    def healthy(self, hosts: Sequence[_H]) -> list[_H]:
        """The hosts to balance over; call :meth:`sweep` with the current time first.

        Panic mode: with ``minHealthPercent`` p > 0 and fewer than p% of ``hosts`` healthy,
        Envoy ignores health and uses them all. With p = 0 an all-ejected cluster gives ``[]``,
        which the caller answers with ``503 UH no healthy upstream``.
        """
        ok = [h for h in hosts if not self.is_ejected(h.key)]
        panic = self.settings.effective_min_health_percent
        if panic > 0 and hosts and 100 * len(ok) / len(hosts) < panic:
            return list(hosts)
        return ok

    def report(self, host_key: str, event: Event, now: float) -> Ejection | None:
        """Feed one attempt's result; returns the ejection it caused, if any.

        Circuit-breaker overflows are not reported (Envoy ignores them: they say nothing about
        the host). A host not in the set (removed meanwhile) is ignored.
        """
        self.sweep(now)
        monitor = self._hosts.get(host_key)
        if monitor is None:
            return None
        if isinstance(event, int):
            if self.split:  # a response proves the connection (Envoy reported it on pool ready)
                monitor.consecutive_local_origin_failure = 0
            return self._status(host_key, monitor, event, now)
        if event not in ("connected", *_LOCAL_AS_STATUS):
            raise ValueError(f"unknown outlier event {event!r}")
        if not self.split:
            if event == "connected":
                return None  # Envoy maps LocalOriginConnectSuccess to no code at all
            return self._status(host_key, monitor, _LOCAL_AS_STATUS[event], now)
        if event in ("success", "connected"):
            monitor.consecutive_local_origin_failure = 0
            return None
        monitor.consecutive_local_origin_failure += 1
        threshold = self.settings.effective_consecutive_local_origin_failures
        if monitor.consecutive_local_origin_failure == threshold:
            return self._trip(host_key, monitor, "consecutive_local_origin_failure", now)
        return None

    def sweep(self, now: float) -> list[str]:
        """Run the interval sweeps due up to ``now``; returns the hosts brought back."""
        back: list[str] = []
        end = self._first_sweep_after(now)
        while self._next < end:
            ejected = [m.return_sweep for m in self._hosts.values() if m.ejected_at is not None]
            stop = min([end, *ejected])
            skipped = stop - self._next  # sweeps that only decay multipliers
            for m in self._hosts.values():
                if m.ejected_at is None:
                    m.multiplier = max(0, m.multiplier - skipped)
            self._next = stop
            if stop == end:
                break
            for key, m in self._hosts.items():
                if m.ejected_at is None:
                    m.multiplier = max(0, m.multiplier - 1)
                elif m.return_sweep == stop:
                    m.ejected_at = None
                    m.consecutive_5xx = m.consecutive_gateway_failure = 0
                    m.consecutive_local_origin_failure = 0
                    back.append(key)
            self._next += 1
        return back

    def stats(self) -> dict[str, int]:
        """Envoy's ``outlier_detection.*`` counters, plus the ``ejections_active`` gauge.

        Enforcement is always 100% under Istio, so ``ejections_total`` equals
        ``ejections_enforced_total``; ``detected`` also counts trips that overflowed.
        """
        names = ["ejections_total", "ejections_enforced_total", "ejections_overflow"]
        names += [
            f"ejections_{stage}_{kind}" for stage in ("detected", "enforced") for kind in _KINDS
        ]
        out = {name: self._counters[name] for name in names}
        out["ejections_active"] = self.ejections_active
        return {f"outlier_detection.{k}": v for k, v in sorted(out.items())}

    def snapshot(self) -> dict[str, dict[str, float | int | None]]:
        """Per-host state for ``/clusters``; ``ejected_until`` is the sweep that un-ejects."""
        return {
            key: {
                "ejected_at": m.ejected_at,
                "ejected_until": None if m.ejected_at is None else self._time(m.return_sweep),
                "multiplier": m.multiplier,
                "num_ejections": m.num_ejections,
                "consecutive_5xx": m.consecutive_5xx,
                "consecutive_gateway_failure": m.consecutive_gateway_failure,
                "consecutive_local_origin_failure": m.consecutive_local_origin_failure,
            }
            for key, m in self._hosts.items()
        }

    def _status(self, key: str, m: _Monitor, status: int, now: float) -> Ejection | None:
        codes = self.settings.http_error_codes  # when set, only the listed statuses are errors
        if not (status in codes if codes else 500 <= status <= 599):
            m.consecutive_5xx = m.consecutive_gateway_failure = 0
            return None
        ejection = None
        if status in _GATEWAY_ERRORS:  # Envoy checks the gateway detector first
            m.consecutive_gateway_failure += 1
            if m.consecutive_gateway_failure == self.settings.effective_consecutive_gateway_errors:
                ejection = self._trip(key, m, "consecutive_gateway_failure", now)
        else:
            m.consecutive_gateway_failure = 0
        m.consecutive_5xx += 1
        if m.consecutive_5xx == self.settings.effective_consecutive_5xx_errors:
            ejection = self._trip(key, m, "consecutive_5xx", now) or ejection
        return ejection

    def _trip(self, key: str, m: _Monitor, kind: EjectionType, now: float) -> Ejection | None:
        """A counter reached its threshold: eject now if ``maxEjectionPercent`` allows."""
        if m.ejected_at is not None:
            return None  # already out; Envoy leaves the counter alone
        self._counters[f"ejections_detected_{kind}"] += 1
        setattr(m, kind, 0)  # the counters are named after their ejection types
        percent = 100 * (self.ejections_active + 1) / len(self._hosts)
        if percent > self.settings.effective_max_ejection_percent:
            self._counters["ejections_overflow"] += 1
            return None
        base = self.base_ejection_time
        if m.multiplier * base < self.max_ejection_time + base:
            m.multiplier += 1
        m.ejected_at, m.duration = now, min(base * m.multiplier, self.max_ejection_time)
        m.return_sweep = self._return_sweep(now, m.duration)
        m.num_ejections += 1
        for name in ("ejections_total", "ejections_enforced_total", f"ejections_enforced_{kind}"):
            self._counters[name] += 1
        return Ejection(key, kind, now, m.duration, self._time(m.return_sweep), m.multiplier)

    def _time(self, index: int) -> float:
        return self.start + index * self.interval

    def _first_sweep_after(self, now: float) -> int:
        """Index of the first sweep later than ``now`` (float-safe around the boundaries)."""
        n = max(1, math.floor((now - self.start) / self.interval))
        while n > 1 and self._time(n - 1) > now:
            n -= 1
        while self._time(n) <= now:
            n += 1
        return n

    def _return_sweep(self, at: float, duration: float) -> int:
        """Index of the first sweep that un-ejects a host ejected ``at`` for ``duration``.

        Envoy's test at each sweep is ``duration <= sweep_time - ejected_at``; it is evaluated
        once, here, so :meth:`sweep` and the reported ``until`` always agree.
        """
        n = max(self._next, math.ceil((at + duration - self.start) / self.interval) - 1)
        while self._time(n) - at < duration:
            n += 1
        return n
