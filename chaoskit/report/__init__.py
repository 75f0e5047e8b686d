"""Rendering a run's journal for people and for CI: one offline HTML file, and JUnit XML.

Both read only the :class:`~chaoskit.experiment.journal.Journal`, so a report can be rebuilt
later from a saved ``--journal`` file, and neither needs pandoc, LaTeX, a browser or a network.
"""

from chaoskit.report.html import render_html
from chaoskit.report.junit import render_junit

__all__ = ["render_html", "render_junit"]
