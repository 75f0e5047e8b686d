"""Chart layout, measured on the laid-out figures: labels that never overprint each other, a
legend that never covers data, and whole numbers on axes that count requests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

from chaoskit.experiment.journal import (
    AFTER,
    BEFORE,
    METHOD,
    FaultWindow,
    Journal,
    Phase,
    Sample,
)
from chaoskit.report import charts


def _drawn(monkeypatch: pytest.MonkeyPatch, chart: Callable[[Journal], Any], j: Journal) -> Figure:
    """The figure ``chart`` saved into the page, laid out as the page shows it."""
    figures: list[Figure] = []
    real = charts._svg

    def keep(fig: Figure, name: str, label: str) -> str:
        figures.append(fig)
        return real(fig, name, label)

    monkeypatch.setattr(charts, "_svg", keep)
    assert chart(j) is not None
    (fig,) = figures
    return fig


def _overlap(a: Bbox, b: Bbox) -> bool:
    """Shared area (touching edges are fine)."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _journal(phases: list[Phase], samples: list[Sample], **kw: Any) -> Journal:
    return Journal("web", "web", "web.yaml", 1, "2025-01-01T00:00:00Z", {}, phases=phases,
                   samples=samples, **kw)  # fmt: skip


def crowded() -> Journal:
    """A 60 s run whose phases and fault windows start fractions of a second apart, the last
    phase near the right edge: side by side, every name overprinted its neighbour."""
    phases = [Phase(BEFORE, 0.0, 0.4), Phase(METHOD, 0.4, 0.9), Phase(AFTER, 57.0, 60.0)]
    samples = [
        Sample(t / 10, p.name, "GET /", 200, 0.01 + (t % 7) / 100)
        for p in phases
        for t in range(int(p.start * 10), int(p.end * 10))
    ]
    faults = [
        FaultWindow("delay reviews", 0.4, 0.8),
        FaultWindow("abort ratings", 0.45, 0.9),
        FaultWindow("reset details", 0.5, 0.9),
    ]
    return _journal(phases, samples, faults=faults, duration=60.0)


def test_phase_and_fault_names_never_overprint(monkeypatch: pytest.MonkeyPatch) -> None:
    fig = _drawn(monkeypatch, charts.latency_over_time, crowded())
    (ax,) = fig.axes
    renderer = fig._get_renderer()  # type: ignore[attr-defined]
    frame = ax.get_window_extent(renderer)
    legend = ax.get_legend().get_window_extent(renderer)
    for kind, count in (("_phase-label", 3), ("_fault-label", 3)):
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_label() == kind]
        assert len(boxes) == count
        for a, b in itertools.combinations(boxes, 2):
            assert not _overlap(a, b), (kind, a, b)
        for box in boxes:  # inside the plot: never into the legend beside it
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1, (kind, box, frame)
            assert not _overlap(box, legend)


def test_apart_names_stay_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    phases = [Phase(BEFORE, 0.0, 20.0), Phase(METHOD, 20.0, 40.0), Phase(AFTER, 40.0, 60.0)]
    samples = [Sample(t, p.name, "GET /", 200, 0.02) for p in phases for t in (p.start + 1,)]
    fig = _drawn(monkeypatch, charts.latency_over_time, _journal(phases, samples))
    renderer = fig._get_renderer()  # type: ignore[attr-defined]
    lows = {round(t.get_window_extent(renderer).y0) for t in fig.axes[0].texts}
    assert len(lows) == 1


def _counts_journal() -> Journal:
    """Few requests per phase: matplotlib's default ticks would read 0.5, 1.5 requests."""
    phases = [Phase(BEFORE, 0.0, 1.0), Phase(METHOD, 1.0, 2.0), Phase(AFTER, 2.0, 3.0)]
    phases[0].statuses = {"200": 3}
    phases[1].statuses = {"200": 1, "503": 2}
    phases[1].flags = {"UF": 2, "URX": 2}
    phases[2].statuses = {"200": 3}
    phases[1].stats = {"cluster.outbound|80||web.upstream_rq_retry": 2.0,
                       "cluster.outbound|80||web.upstream_rq_timeout": 1.0}  # fmt: skip
    return _journal(phases, [])


def _integers(ticks: list[float], low: float, high: float) -> bool:
    shown = [t for t in ticks if low - 1e-9 <= t <= high + 1e-9]
    return len(shown) >= 2 and all(float(t).is_integer() for t in shown)


def test_request_counts_get_whole_number_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    fig = _drawn(monkeypatch, charts.statuses_and_flags, _counts_journal())
    for ax in fig.axes:
        assert _integers(list(ax.get_yticks()), *ax.get_ylim()), ax.get_yticks()
    fig = _drawn(monkeypatch, charts.resilience_counters, _counts_journal())
    (ax,) = fig.axes
    assert _integers(list(ax.get_xticks()), *ax.get_xlim()), ax.get_xticks()


def test_the_phase_legend_covers_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    j = _counts_journal()  # the tallest bars at the top right of both plots, where it was
    j.phases[1].statuses, j.phases[2].statuses = {"200": 1, "503": 40}, {"503": 38}
    j.phases[1].flags, j.phases[2].flags = {"UF": 2, "URX": 40}, {"URX": 38}
    fig = _drawn(monkeypatch, charts.statuses_and_flags, j)
    renderer = fig._get_renderer()  # type: ignore[attr-defined]
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert legends
    bars = [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle)]
    labels = [t for ax in fig.axes for t in ax.texts if t.get_text()]
    assert bars and labels
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for artist in [*bars, *labels]:
            assert not _overlap(artist.get_window_extent(renderer), box), artist
    assert len(legends) == 1  # one for both plots: a phase is one colour everywhere
