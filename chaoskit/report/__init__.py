"""Rendering a run's journal for people and for CI: one offline HTML file, and JUnit XML.

Both read only the :class:`~chaoskit.experiment.journal.Journal`, so a report can be rebuilt
later from a saved ``--journal`` file, and neither needs pandoc, LaTeX, a browser or a network.

The HTML report's charts need matplotlib, an optional dependency (``chaoskit[report]``): the
names below load on first use, so JUnit output works without it, and :func:`missing_report_deps`
lets the CLI refuse ``--report`` before an experiment runs rather than after.
"""

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chaoskit.report.html import render_html
    from chaoskit.report.junit import render_junit

__all__ = ["INSTALL_HINT", "missing_report_deps", "render_html", "render_junit"]

INSTALL_HINT = "pip install 'chaoskit[report]'"


def missing_report_deps() -> str | None:
    """One line naming what the HTML report lacks and how to install it, or ``None``."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken install, or sys.modules["matplotlib"] = None
        found = False
    if found:
        return None
    return f"the HTML report needs matplotlib, which is not installed: {INSTALL_HINT}"


def __getattr__(name: str) -> Any:
    if name == "render_html":
        from chaoskit.report.html import render_html  # noqa: PLC0415 - matplotlib loads slowly

        return render_html
    if name == "render_junit":
        from chaoskit.report.junit import render_junit  # noqa: PLC0415

        return render_junit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
