"""The report's pictures: matplotlib figures saved as SVG text to inline in the HTML.

Why this shape: a report must open offline from a CI artifact, so every chart is vector text
inside the page (no image files, no JavaScript, no fonts to fetch). Glyphs are drawn as paths
from the DejaVu font that ships inside matplotlib, and ``svg.hashsalt`` is fixed, so the same
journal gives the same bytes on any machine with the same matplotlib. ``Figure`` objects are
used directly (never pyplot), so no GUI backend or global figure registry is involved.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from chaoskit.experiment.journal import Journal
from chaoskit.report import data
from chaoskit.report.layout import stagger

#: Dots drawn at most in the latency scatter; 10,000 dots would be ~1 MB of SVG on their own.
SCATTER_LIMIT = 3000

PHASE_COLOURS = ("#0072B2", "#CC79A7", "#009E73", "#E69F00", "#999999", "#56B4E9")
_MARKERS = {"2xx": "o", "3xx": "D", "4xx": "s", "5xx": "^", "no answer": "x"}
_FAULT_COLOUR = "#D55E00"
_RC = {
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
}


def _rc(name: str) -> Any:
    """Settings for one chart. ``Any`` because matplotlib's stubs type the keys as a literal
    union that varies between releases; the keys used here exist in every supported one."""
    return {**_RC, "svg.hashsalt": f"chaoskit-{name}"}


@contextmanager
def _figure(name: str, height: float) -> Iterator[Figure]:
    """A figure whose SVG ids are salted by ``name``: stable, yet distinct between charts."""
    with matplotlib.rc_context(_rc(name)):
        yield Figure(figsize=(9.0, height), layout="constrained")


def _svg(fig: Figure, name: str, label: str) -> str:
    """Save as SVG and make it safe to inline next to other charts in one HTML page."""
    with matplotlib.rc_context(_rc(name)):
        buf = io.StringIO()
        fig.savefig(
            buf,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE (it names a URL)
    # Every chart defines ids such as "figure_1" or glyph "DejaVuSans-30": prefix them so
    # that references never resolve into another chart's definitions.
    prefix = f"{name}-"
    text = re.sub(r'\bid="', f'id="{prefix}', text)
    text = text.replace('href="#', f'href="#{prefix}').replace("url(#", f"url(#{prefix}")
    attrs = f'<svg class="chart" role="img" aria-label="{html.escape(label)}" '
    return text.replace("<svg ", attrs, 1).rstrip() + "\n"


def phase_colours(journal: Journal) -> dict[str, str]:
    """One colour per phase, fixed by run order, shared by every chart."""
    names = data.phase_names(journal)
    return {n: PHASE_COLOURS[i % len(PHASE_COLOURS)] for i, n in enumerate(names)}


def _seconds_axis(ax: Axes, log: bool) -> None:
    """Ticks read "10 ms", "1 s" rather than 10⁻², which nobody compares at a glance."""
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: data.fmt_seconds(v)))
    ax.set_ylabel("latency" + (" (log scale)" if log else ""))


def _log_scale(values: list[float]) -> bool:
    """Latency spans decades under a fault (5 ms vs 5 s): a log axis keeps both readable."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / max(min(positive), 1e-4) > 100


def _floor(latency: float) -> float:
    return max(latency, 1e-4)


def latency_over_time(journal: Journal) -> tuple[str, int] | None:
    """Scatter of every request (or a deterministic subset) by outcome, faults shaded.

    Returns the SVG and how many dots it shows, or ``None`` when there is no traffic. Phase
    names sit at the bottom and fault names at the top, each at the time it starts, in rows
    (:func:`chaoskit.report.layout.stagger`) so that no two overprint.
    """
    if not journal.samples:
        return None
    shown = data.downsample(journal.samples, SCATTER_LIMIT)
    log = _log_scale([s.latency for s in journal.samples])
    with _figure("latency-time", 3.8) as fig:
        ax = fig.add_subplot()
        fault_labels = []
        for fault in journal.faults:
            start, end = data.fault_span(journal, fault)
            ax.axvspan(start, end, color=_FAULT_COLOUR, alpha=0.12, linewidth=0)
            fault_labels.append(_time_label(ax, start, fault.name, 8, _FAULT_COLOUR, top=True))
        phase_labels = []
        for phase in journal.phases:
            ax.axvline(phase.start, color="#777777", linestyle=":", linewidth=0.8)
            phase_labels.append(_time_label(ax, phase.start, phase.name, 7, "#555555", top=False))
        totals: dict[str, int] = {}
        for s in journal.samples:
            cls = data.status_class(s.status)
            totals[cls] = totals.get(cls, 0) + 1
        for cls, colour in data.STATUS_CLASSES:
            pts = [s for s in shown if data.status_class(s.status) == cls]
            if not pts:
                continue
            ax.scatter(
                [s.t for s in pts],
                [_floor(s.latency) if log else s.latency for s in pts],
                s=9,
                c=colour,
                marker=_MARKERS[cls],
                linewidths=0.8 if cls == "no answer" else 0,
                alpha=0.7,
                label=f"{cls} ({totals[cls]})",
            )
        _seconds_axis(ax, log)
        if journal.faults:  # headroom, so fault names do not sit on the slowest dots
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * (4 if log else 1.25))
        ax.set_xlabel("time since the run started (s)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="outcome")
        fig.draw_without_rendering()  # lays the figure out, so label extents can be measured
        _stagger_labels(ax, phase_labels, top=False)
        _stagger_labels(ax, fault_labels, top=True)
        text = _svg(fig, "latency-time", "Latency of each request over time, faults shaded")
    return text, len(shown)


#: Pixels kept between two labels on one row, and between a label and the axes' edge.
_LABEL_GAP = 4.0


def _time_label(ax: Axes, t: float, name: str, size: float, colour: str, top: bool) -> Text:
    """A name at time ``t`` (x in data, y in axes units), placed in its row later; its artist
    label says which kind it is (never drawn, unlike a ``gid``, which would become an SVG id
    repeated once per label; the leading ``_`` keeps it out of the legend)."""
    return ax.text(
        t, 0.99 if top else 0.01, f" {name}", transform=ax.get_xaxis_transform(),
        va="top" if top else "bottom", ha="left", fontsize=size, color=colour,
        label="_fault-label" if top else "_phase-label",
    )  # fmt: skip


def _stagger_labels(ax: Axes, labels: list[Text], top: bool) -> None:
    """Move labels into rows so none overlaps another; a label that would run past the right
    edge of the plot ends at its time instead of starting there."""
    if not labels:
        return
    frame = ax.get_window_extent()
    boxes = [label.get_window_extent() for label in labels]
    spans = []
    for label, box in zip(labels, boxes, strict=True):
        if box.x1 > frame.x1 - _LABEL_GAP:
            label.set_horizontalalignment("right")
            label.set_text(label.get_text().strip() + " ")  # the space on the line's side
            spans.append((box.x0 - box.width, box.x0))
        else:
            spans.append((box.x0, box.x1))
    rows = stagger(spans, gap=_LABEL_GAP)
    height = (max(b.height for b in boxes) + 1.0) / max(frame.height, 1.0)
    for label, row in zip(labels, rows, strict=True):
        label.set_y(0.99 - row * height if top else 0.01 + row * height)


def latency_distribution(journal: Journal) -> str | None:
    """Box per phase (whiskers p5–p95, p99 and max marked): "did the fault move the tail?"."""
    by_phase = data.samples_by_phase(journal)
    names = [n for n in data.phase_names(journal) if by_phase.get(n)]
    if not names:
        return None
    values = [[s.latency for s in by_phase[n]] for n in names]
    log = _log_scale([v for vs in values for v in vs])
    with _figure("latency-dist", 3.2) as fig:
        ax = fig.add_subplot()
        positions = list(range(1, len(names) + 1))
        box = ax.boxplot(
            [[_floor(v) for v in vs] if log else vs for vs in values],
            positions=positions,
            whis=(5, 95),
            showfliers=False,
            patch_artist=True,
            widths=0.5,
            medianprops={"color": "#000000"},
        )
        colours = phase_colours(journal)
        for patch, name in zip(box["boxes"], names, strict=True):
            patch.set_facecolor(colours[name])
            patch.set_alpha(0.5)
        p99 = [data.percentile(vs, 99) for vs in values]
        top = [max(vs) for vs in values]
        ax.scatter(
            positions,
            [_floor(v) for v in p99] if log else p99,
            marker="_",
            s=200,
            c="#D55E00",
            label="p99",
            zorder=3,
        )
        ax.scatter(
            positions,
            [_floor(v) for v in top] if log else top,
            marker="x",
            s=25,
            c="#000000",
            label="max",
            zorder=3,
        )
        ax.set_xticks(positions)
        ax.set_xticklabels(
            [f"{n}\n({len(vs)} requests)" for n, vs in zip(names, values, strict=True)]
        )
        _seconds_axis(ax, log)
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.0, 1.0), title="box: p25–p75\nwhiskers: p5–p95"
        )
        return _svg(fig, "latency-dist", "Latency distribution per phase")


def _bars(
    ax: Axes,
    table: Mapping[str, Mapping[str, float]],
    keys: list[str],
    colours: Mapping[str, str],
    horizontal: bool = False,
) -> None:
    """``keys`` along one axis, one bar per phase within each, non-zero counts written on them.

    Phases with nothing to show get no bar (less clutter) but keep their colour, so a phase is
    the same colour in every chart of the report.
    """
    phases = [p for p in table if any(table[p].get(k, 0) for k in keys)]
    step = 0.8 / max(len(phases), 1)
    for i, phase in enumerate(phases):
        pos = [k + (i - (len(phases) - 1) / 2) * step for k in range(len(keys))]
        values = [table[phase].get(k, 0) for k in keys]
        draw = ax.barh if horizontal else ax.bar
        bars = draw(pos, values, step * 0.95, label=phase, color=colours[phase])
        ax.bar_label(bars, labels=[f"{v:g}" if v else "" for v in values], fontsize=7, padding=2)
    if horizontal:
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels(keys)
        ax.invert_yaxis()
        ax.margins(x=0.12)
    else:
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(keys)
        ax.margins(y=0.15)


def _status_key(key: str) -> tuple[int, str]:
    return (0, key.zfill(3)) if key.isdigit() else (1, key)


def _nonzero_keys(table: Mapping[str, Mapping[str, float]]) -> list[str]:
    return sorted({k for row in table.values() for k, v in row.items() if v}, key=_status_key)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def statuses_and_flags(journal: Journal) -> str | None:
    """What the client saw (status codes) beside what the proxy did (Envoy response flags)."""
    if not journal.phases and not journal.samples:
        return None
    statuses, flags = data.phase_counts(journal)
    colours = phase_colours(journal)
    with _figure("status-flags", 3.2) as fig:
        left, right = fig.subplots(1, 2)
        for ax, table, empty in (
            (left, statuses, "no requests"),
            (right, flags, "no response flags recorded"),
        ):
            keys = _nonzero_keys(table)
            if keys:
                _bars(ax, table, keys, colours)
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2.5 requests
            else:
                _empty(ax, empty)
        # One legend for both, outside the plots: inside, it sat on the tallest bars.
        handles: dict[str, Artist] = {}
        for ax in (left, right):
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                handles.setdefault(label, handle)
        if handles:
            ordered = [n for n in colours if n in handles]
            fig.legend(
                [handles[n] for n in ordered], ordered, title="phase", loc="outside right upper"
            )
        left.set_title("status codes (error: no HTTP answer)")
        left.set_ylabel("requests")
        right.set_title("Envoy response flags")
        right.set_ylabel("requests")
        return _svg(fig, "status-flags", "Status codes and response flags per phase")


def resilience_counters(journal: Journal) -> str | None:
    """Retries, timeouts, overflows, ejections and injected faults, per phase.

    ``None`` when every counter is zero: an empty chart says less than one sentence.
    """
    table = data.counters(journal)
    rows = [label for label, per in table.items() if any(per.values())]
    if not rows:
        return None
    by_phase = {
        p.name: {label: table[label].get(p.name, 0.0) for label in rows} for p in journal.phases
    }
    drawn = sum(any(row.values()) for row in by_phase.values())
    with _figure("counters", 0.9 + 0.25 * len(rows) * max(1, drawn)) as fig:
        ax = fig.add_subplot()
        _bars(ax, by_phase, rows, phase_colours(journal), horizontal=True)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("count (counter deltas summed over clusters)")
        ax.legend(title="phase", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _svg(fig, "counters", "Retries, timeouts, overflows and ejections per phase")
