"""The HTML report: well-formed, self-contained, deterministic, escaped, and small enough."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from chaoskit.experiment.journal import (
    BEFORE,
    INTERRUPTED,
    METHOD,
    NOT_STEADY,
    Journal,
    Phase,
    Sample,
)
from chaoskit.records import ResponseFlag
from chaoskit.report import data, render_html

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}  # fmt: skip
_URL_ATTRS = {"src", "href", "xlink:href", "srcset", "action", "poster", "data", "background"}


class _Checker(HTMLParser):
    """Fails on any unbalanced tag; collects headings, charts and every resource reference."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.headings: list[str] = []
        self.refs: list[str] = []
        self.svgs = 0
        self.tags: set[str] = set()
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag not in _VOID:
            self.stack.append(tag)
        if tag in ("h1", "h2"):
            self._heading = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.svgs += tag == "svg"
        self.refs += [v or "" for k, v in attrs if k in _URL_ATTRS]
        self.refs += re.findall(r"url\(([^)]*)\)", " ".join(v or "" for _, v in attrs))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag in ("h1", "h2") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, text: str) -> None:
        if self._heading is not None:
            self._heading.append(text)


def _check(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.problems == []
    assert checker.stack == [], f"unclosed: {checker.stack}"
    assert page.startswith("<!DOCTYPE html>")
    return checker


def _assert_self_contained(page: str, checker: _Checker) -> None:
    remote = [r for r in checker.refs if not r.strip().startswith("#")]
    assert remote == [], "every reference must stay inside the page"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "@import" not in page
    assert "<script" not in page.lower()
    assert not {"link", "img", "iframe", "object", "embed", "script"} & checker.tags
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_deviated_report_has_every_section(deviated_journal: Journal) -> None:
    page = render_html(deviated_journal)
    checker = _check(page)
    _assert_self_contained(page, checker)
    assert checker.headings == [
        "Checkout survives reviews & ratings faults",
        "Lessons",
        "Phases at a glance",
        "Checks",
        "Latency over time",
        "Latency distribution per phase",
        "Status codes and response flags per phase",
        "Retries, timeouts, overflows and ejections",
        "Faults",
        "Rollbacks",
        "Notes",
        "Configuration",
        "Versions",
    ]
    assert checker.svgs >= 4
    assert ">DEVIATED<" in page
    assert "<dt>exit code</dt><dd>1</dd>" in page
    assert "<code>chaoskit run experiments/checkout.yaml --seed 42</code>" in page
    assert "the route allows 3 × 1s attempts — retries here are wasted" in page
    assert "p95 &lt; 1s" in page and "&lt;retries&gt; exhausted &amp; client gave up" in page
    assert page.count('<tr class="fail">') == 3  # two checks and one rollback
    assert "&lt;connection refused&gt;" in page
    assert "delay &lt;reviews&gt;" in page and "still on at" in page
    assert "consecutive_5xx" in page
    assert "description: &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "mitmproxy" in page and "12.1.1" in page


def _banner(page: str) -> str:
    return page[page.index('<header class="verdict') : page.index("</header>")]


def test_the_banner_names_each_failed_check_and_its_phase(deviated_journal: Journal) -> None:
    banner = _banner(render_html(deviated_journal))
    assert "<li><b>method</b>: success rate — expected &gt;= 99%, observed 71.2%</li>" in banner
    assert "<li><b>method</b>: latency p95 — expected p95 &lt; 1s, observed 2s</li>" in banner
    assert "steady-state-before" not in banner  # it passed


def test_the_banner_says_where_a_broken_run_stopped(error_journal: Journal) -> None:
    banner = _banner(render_html(error_journal))
    assert "Stopped before the first phase, while the proxy and the apps were starting." in banner
    error_journal.status = INTERRUPTED
    error_journal.phases = [Phase(BEFORE, 0.0, 5.0), Phase(METHOD, 5.0)]
    assert "Stopped during method." in _banner(render_html(error_journal))


def test_a_steady_state_not_met_before_injection_is_not_a_deviation(
    deviated_journal: Journal,
) -> None:
    deviated_journal.status, deviated_journal.exit_code = NOT_STEADY, 4
    before = deviated_journal.phases[0]
    before.checks = [dataclasses.replace(c, phase=before.name) for c in deviated_journal.checks]
    deviated_journal.phases[1:] = []
    page = render_html(deviated_journal)
    _check(page)
    banner = _banner(page)
    assert ">NOT STEADY<" in banner and "v-not-steady" in banner and "DEVIATED" not in page
    assert "not a deviation" in banner and "<dt>exit code</dt><dd>4</dd>" in banner
    assert page.count("<li><b>steady-state-before</b>") == 2  # the failed checks


def test_response_flags_are_explained_from_the_one_flag_enum(deviated_journal: Journal) -> None:
    page = render_html(deviated_journal)
    section = page[page.index('<section id="statuses">') :]
    section = section[: section.index("</section>")]
    for flag in (ResponseFlag.UF, ResponseFlag.URX, ResponseFlag.DI):
        assert f'<abbr title="{html.escape(flag.meaning)}"><b>{flag}</b></abbr>' in section
        assert f"<td>{html.escape(flag.meaning)}</td>" in section
    assert "UpstreamRetryLimitExceeded" in section and "UH" not in section  # only flags seen


def test_ids_are_unique_across_inline_charts(deviated_journal: Journal) -> None:
    page = render_html(deviated_journal)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    defined = set(ids)
    used = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    assert used <= defined


def test_counters_sum_over_clusters_but_keep_names_apart(deviated_journal: Journal) -> None:
    table = data.counters(deviated_journal)
    assert table["retries"][METHOD] == 45  # two clusters; retry_overflow is not a retry
    assert table["retry overflows"][METHOD] == 2
    assert table["route timeouts"][METHOD] == 3
    assert table["per-try timeouts"][METHOD] == 12
    assert table["ejections"][METHOD] == 1
    assert table["upstream faults"][METHOD] == 4
    assert table["pending overflows"][METHOD] == 0


def test_same_journal_same_bytes_across_processes(
    deviated_journal: Journal, tmp_path: Path
) -> None:
    first = render_html(deviated_journal)
    assert render_html(deviated_journal) == first
    src = tmp_path / "journal.json"
    src.write_text(deviated_journal.to_json())
    code = (
        "import json, sys; from chaoskit.experiment.journal import Journal; "
        "from chaoskit.report import render_html; "
        "sys.stdout.write(render_html(Journal.from_dict(json.load(open(sys.argv[1])))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "977"}
    out = subprocess.run([sys.executable, "-c", code, str(src)], env=env, check=True,
                         capture_output=True, text=True, encoding="utf-8").stdout  # fmt: skip
    assert out == first


def test_ten_thousand_samples_stay_small_and_say_they_were_thinned(
    make_deviated: Callable[[int], Journal],
) -> None:
    journal = make_deviated(10_000)
    started = time.perf_counter()
    page = render_html(journal)
    elapsed = time.perf_counter() - started
    assert len(page.encode()) < 1_500_000
    assert "Showing 3,000 of 10,000 requests" in page
    assert elapsed < 30  # generous: measured ~1–2 s; catches an accidental quadratic
    assert '<td class="num">' in page


def test_held_journal_without_faults(held_journal: Journal) -> None:
    page = render_html(held_journal)
    checker = _check(page)
    _assert_self_contained(page, checker)
    assert ">HELD<" in page and "v-held" in page
    assert "No fault was applied." in page
    assert "No retries, timeouts, overflows, ejections or injected faults were counted." in page
    assert "Lessons" not in checker.headings
    assert checker.svgs >= 3
    assert "Showing" not in page


def test_error_journal_with_no_phases(error_journal: Journal) -> None:
    page = render_html(error_journal)
    checker = _check(page)
    _assert_self_contained(page, checker)
    assert ">ERROR<" in page and "<dt>exit code</dt><dd>3</dd>" in page
    assert "never became ready" in page and "&lt;refused&gt;\\x1b[0m" in page
    assert "No traffic samples were recorded." in page
    assert "No check was evaluated." in page
    assert checker.svgs == 0
    assert "Error" in checker.headings


def test_interrupted_samples_without_phases_or_answers(error_journal: Journal) -> None:
    error_journal.status = INTERRUPTED
    error_journal.samples = [Sample(0.1, METHOD, "GET /", 0, 0.0, "refused")]
    page = render_html(error_journal)
    checker = _check(page)
    assert ">INTERRUPTED<" in page
    assert checker.svgs == 3  # scatter, distribution, statuses; no counters without phases


def test_downsample_keeps_failures_and_is_stable() -> None:
    samples = [Sample(i, METHOD, "t", 503 if i % 10 == 0 else 200, 0.01) for i in range(10_000)]
    kept = data.downsample(samples, 3000)
    assert len(kept) == 3000
    assert sum(s.status == 503 for s in kept) == 1000  # all of them fit in half the budget
    assert kept == data.downsample(samples, 3000)
    assert [s.t for s in kept] == sorted(s.t for s in kept)
    assert data.downsample(samples[:10], 3000) == samples[:10]


def test_reproduce_command_quotes_the_file(held_journal: Journal) -> None:
    held_journal.file = "my experiments/a'b.yaml"
    assert data.reproduce_command(held_journal) == (
        "chaoskit run 'my experiments/a'\"'\"'b.yaml' --seed 42"
    )


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no /usr/bin/chromium")
def test_renders_in_a_headless_browser(deviated_journal: Journal, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(deviated_journal), encoding="utf-8")
    png = tmp_path / "report.png"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={png}", "--window-size=1100,4000", page.as_uri()],
                   check=True, capture_output=True, timeout=90)  # fmt: skip
    assert png.stat().st_size > 10_000
    assert json.dumps(png.read_bytes()[:4].hex()) == '"89504e47"'
