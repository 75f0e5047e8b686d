"""Counters named like Envoy's, readable as Prometheus text or JSON (``/stats``).

Names follow Envoy: ``cluster.<cluster>.upstream_rq_total``, ``cluster.<cluster>.upstream_rq_503``,
``cluster.<cluster>.upstream_rq_retry``, ``http.downstream_rq_2xx``, ``fault.aborts_injected`` ...
Only the proxy loop writes; readers take a copy under the lock.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

_PROM_NAME = re.compile(r"[^a-zA-Z0-9_]")


class Stats:
    def __init__(self) -> None:
        self._counters: Counter[str] = Counter()
        self._gauges: dict[str, float] = {}
        self._cluster_of: dict[str, tuple[str, str]] = {}  # full name → (cluster, stat)
        self._lock = threading.Lock()

    @staticmethod
    def cluster_stat(cluster: str, stat: str) -> str:
        return f"cluster.{cluster}.{stat}"

    def cluster_inc(self, cluster: str, stat: str, by: int = 1) -> None:
        name = f"cluster.{cluster}.{stat}"  # cluster_stat, inlined: several calls per request
        with self._lock:
            self._counters[name] += by
            if name not in self._cluster_of:
                self._cluster_of[name] = (cluster, stat)

    def cluster_gauge(self, cluster: str, stat: str, value: float) -> None:
        name = self.cluster_stat(cluster, stat)
        with self._lock:
            self._gauges[name] = value
            self._cluster_of[name] = (cluster, stat)

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counters[name] += by

    def get(self, name: str) -> float:
        with self._lock:
            if name in self._gauges:
                return self._gauges[name]
            return self._counters.get(name, 0)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = dict(self._counters)
            out.update(self._gauges)
        return dict(sorted(out.items()))

    def reset(self) -> None:
        """``POST /reset_counters``: counters go to zero; gauges describe state, so they stay."""
        with self._lock:
            self._counters.clear()

    def prometheus(self) -> str:
        """Prometheus text exposition, with Envoy's ``envoy_cluster_*`` label convention."""
        lines: list[str] = []
        typed: set[str] = set()
        with self._lock:
            items: list[tuple[str, float, bool]] = [
                (k, v, k in self._gauges) for k, v in self._counters.items()
            ]
            items += [(k, v, True) for k, v in self._gauges.items()]
            split = dict(self._cluster_of)
        rows = []
        for name, value, gauge in items:
            metric, labels = _prometheus_name(name, split.get(name))
            rows.append((metric, labels, value, gauge))
        for metric, labels, value, gauge in sorted(rows):  # one block per metric
            if metric not in typed:
                lines.append(f"# TYPE {metric} {'gauge' if gauge else 'counter'}")
                typed.add(metric)
            lines.append(f"{metric}{labels} {value:g}")
        return "\n".join(lines) + "\n"


def _prometheus_name(name: str, cluster_stat: tuple[str, str] | None) -> tuple[str, str]:
    if cluster_stat is not None:
        # Cluster names contain dots and pipes, so they become a label, as Envoy does.
        cluster, stat = cluster_stat
        cluster_label = cluster.replace("\\", "\\\\").replace('"', '\\"')
        return (
            f"envoy_cluster_{_PROM_NAME.sub('_', stat)}",
            f'{{envoy_cluster_name="{cluster_label}"}}',
        )
    return "envoy_" + _PROM_NAME.sub("_", name), ""
