"""The report's retry counters: Envoy's four, kept apart, summed over clusters (issue 12, #13)."""

from __future__ import annotations

from chaoskit.experiment.journal import METHOD, Journal
from chaoskit.report import data
from chaoskit.report.html import render_html

from .conftest import CLUSTER


def test_the_report_shows_every_retry_counter_apart(deviated_journal: Journal) -> None:
    method = deviated_journal.phase(METHOD)
    assert method is not None
    method.stats = {
        **method.stats,
        f"{CLUSTER}.upstream_rq_retry_success": 30.0,
        f"{CLUSTER}.upstream_rq_retry_limit_exceeded": 7.0,
        "cluster.ratings.upstream_rq_retry_limit_exceeded": 1.0,
    }
    table = data.counters(deviated_journal)
    assert table["retries"][METHOD] == 45  # none of the other retry counters is a retry
    assert table["retry successes"][METHOD] == 30
    assert table["retry limit exceeded"][METHOD] == 8
    assert table["retry overflows"][METHOD] == 2
    labels = list(table)
    assert labels[:4] == ["retries", "retry successes", "retry limit exceeded", "retry overflows"]
    page = render_html(deviated_journal)
    assert "retry limit exceeded" in page and "retry successes" in page
