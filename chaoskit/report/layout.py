"""Placing chart labels so they never overlap: pure arithmetic on measured extents.

Why: the latency chart names each phase and each fault window at the time it starts. Phases
can be seconds apart on a run of minutes (a probe-only steady state, a short method), so names
drawn side by side on one line overprint each other. The chart measures each label's width
once the figure is laid out, and this module assigns rows so that labels sharing a row are
apart by at least ``gap`` — the same greedy interval partitioning as scheduling meetings into
rooms: the fewest rows, and a label only leaves the first row when it must.
"""

from __future__ import annotations

from collections.abc import Sequence


def stagger(spans: Sequence[tuple[float, float]], gap: float = 0.0) -> list[int]:
    """The row (0 first) of each label, given its ``(start, end)`` extent on the shared axis.

    Labels are placed in order of their start; each takes the lowest row whose last label ends
    at least ``gap`` before it starts. Equal input, equal rows.
    """
    rows_end: list[float] = []
    rows = [0] * len(spans)
    for i in sorted(range(len(spans)), key=lambda i: (spans[i][0], i)):
        start, end = spans[i]
        for row, last in enumerate(rows_end):
            if start >= last + gap:
                rows[i], rows_end[row] = row, end
                break
        else:
            rows[i] = len(rows_end)
            rows_end.append(end)
    return rows
