"""``--report``: one HTML file that tells what a run found, readable offline, from CI artifacts.

Chaos Toolkit's users ask for reports that need no pandoc, LaTeX or cairo
(chaostoolkit/chaostoolkit#289, #312; chaostoolkit/chaostoolkit-reporting#19, #22): this is a
single self-contained page, with CSS inline, charts as inline SVG and no script or remote
resource of any kind, so it opens from a zip of artifacts on an air-gapped laptop. The verdict,
the way to reproduce it, and the lessons come first, because they are what a reader needs;
the evidence (checks, charts, counters) follows, then the configuration that produced it.
Every string from the journal is escaped: it holds URLs, YAML and error text from the outside.
"""

from __future__ import annotations

import html

from chaoskit.experiment.journal import DEVIATED, ERROR, HELD, INTERRUPTED, NOT_STEADY, Journal
from chaoskit.report import charts, data

_VERDICTS = {
    HELD: ("HELD", "The steady-state hypothesis held."),
    DEVIATED: ("DEVIATED", "The system deviated from its steady-state hypothesis."),
    NOT_STEADY: (
        "NOT STEADY",
        "The steady state was not met before injection: no fault was injected and the method "
        "was skipped, so this is not a deviation. Make the system hold its hypothesis without "
        "faults first.",
    ),
    ERROR: ("ERROR", "The run failed before it could reach a verdict."),
    INTERRUPTED: ("INTERRUPTED", "The run was interrupted before it finished."),
}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;
background:#f6f6f4}
main{max-width:1000px;margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:2rem 0 .5rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
.verdict{border-radius:8px;padding:1rem 1.25rem;color:#fff}
.v-held{background:#1e7b4f}.v-deviated{background:#b3261e}.v-error{background:#6b1d1d}
.v-interrupted{background:#5f6368}.v-not-steady{background:#8a4b00}
.verdict ul.failed{margin:.2rem 0 .6rem;padding-left:1.2rem}
.word{font-size:1.9rem;font-weight:700;letter-spacing:.06em;margin:0}
.verdict dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.6rem 0}
.verdict dt{opacity:.85}.verdict dd{margin:0}
.verdict code{background:rgba(0,0,0,.28);padding:.15rem .4rem;border-radius:4px;color:#fff}
.lessons{background:#fff8e1;border-left:6px solid #e6a100;padding:.6rem 1rem;border-radius:4px}
.lessons li{margin:.3rem 0;font-size:1.05rem}
.errorbox{background:#fdecea;border-left:6px solid #b3261e;padding:.6rem 1rem;white-space:pre-wrap}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#efefeb}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:#fdecea}.pass{color:#1e7b4f;font-weight:600}
.fail .res{color:#b3261e;font-weight:700}
figure{margin:.5rem 0;background:#fff;padding:.5rem;border:1px solid #ddd;border-radius:4px}
figcaption{font-size:.85rem;color:#555}
svg.chart{display:block;max-width:100%;height:auto}
pre{background:#fff;border:1px solid #ddd;padding:.6rem;overflow:auto;font-size:.82rem}
summary{cursor:pointer;font-family:monospace}.muted{color:#666}
"""


def _e(text: object) -> str:
    return html.escape(data.printable(text), quote=True)


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """Cells are already HTML, escaped by the caller."""
    out = ["<table><thead><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(
            f'<td class="num">{c}</td>' if isinstance(c, _Num) else f"<td>{c}</td>" for c in row
        )
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class _Num(str):
    """A cell that holds a number: right-aligned so columns compare at a glance."""

    __slots__ = ()


def _num(text: str) -> str:
    return _Num(_e(text))


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{_e(title)}</h2>\n{body}\n</section>\n'


def _figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}<figcaption>{caption}</figcaption></figure>"


def _banner(journal: Journal) -> str:
    word, sentence = _VERDICTS.get(journal.status, (journal.status.upper(), ""))
    checks = journal.checks
    failed = sum(not c.ok for c in checks)
    facts = [
        ("experiment", journal.experiment),
        ("file", journal.file or "–"),
        ("seed", str(journal.seed)),
        ("started", journal.started_at or "–"),
        ("duration", f"{journal.duration:.1f} s"),
        ("exit code", str(journal.exit_code)),
        ("checks", f"{len(checks) - failed} of {len(checks)} passed"),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    css = f"v-{journal.status}" if journal.status in _VERDICTS else "v-error"
    return (
        f'<header class="verdict {css}" id="verdict">\n'
        f'<p class="word">{_e(word)}</p>\n<h1>{_e(journal.title or journal.experiment)}</h1>\n'
        f"<p>{_e(sentence)}</p>\n{_what_failed(journal)}<dl>{dl}</dl>\n"
        f"<p>Reproduce: <code>{_e(data.reproduce_command(journal))}</code></p>\n</header>\n"
    )


#: Failed checks named in the banner; the rest are counted there and listed under "Checks".
_BANNER_FAILURES = 5


def _what_failed(journal: Journal) -> str:
    """The first thing a reader asks: which check failed, in which phase (and, for a run that
    broke or was stopped, where it stopped)."""
    out = []
    if journal.status in (ERROR, INTERRUPTED):
        out.append(f"<p>Stopped {_e(data.stopped_in(journal))}.</p>")
    failed = [c for c in journal.checks if not c.ok]
    if failed:
        items = [
            f"<li><b>{_e(c.phase)}</b>: {_e(c.name)} — expected {_e(c.expected)}, "
            f"observed {_e(c.observed)}</li>"
            for c in failed[:_BANNER_FAILURES]
        ]
        if len(failed) > _BANNER_FAILURES:
            more = len(failed) - _BANNER_FAILURES
            items.append(f'<li><a href="#checks">{more} more failed</a></li>')
        out.append(f'<p>Failed:</p><ul class="failed">{"".join(items)}</ul>')
    return "\n".join(out) + ("\n" if out else "")


def _lessons(journal: Journal) -> str:
    if not journal.lessons:
        return ""
    items = "".join(f"<li>{_e(lesson)}</li>" for lesson in journal.lessons)
    return _section("lessons", "Lessons", f'<div class="lessons"><ul>{items}</ul></div>')


def _glance(journal: Journal) -> str:
    rows = []
    for f in data.phase_figures(journal):
        ok = f"{f.answered_2xx / f.requests * 100:.4g}%" if f.requests else "–"
        rows.append(
            [
                _e(f.name),
                _num(f"{f.start:.1f}–{f.end:.1f} s"),
                _num(str(f.requests)),
                _num(ok),
                _num(data.fmt_seconds(f.p50)),
                _num(data.fmt_seconds(f.p95)),
                _num(data.fmt_seconds(f.p99)),
                _num(data.fmt_seconds(f.max)),
                _num(f"{f.checks_ok}/{f.checks}"),
            ]
        )
    if not rows:
        return _section("phases", "Phases at a glance", '<p class="muted">No phase ran.</p>')
    head = ["phase", "window", "requests", "2xx", "p50", "p95", "p99", "max", "checks"]
    return _section("phases", "Phases at a glance", _table(head, rows))


def _checks(journal: Journal) -> str:
    checks = journal.checks
    if not checks:
        return _section("checks", "Checks", '<p class="muted">No check was evaluated.</p>')
    rows = [
        [
            _e(c.phase),
            _e(c.name),
            _e(c.expected),
            _e(c.observed),
            '<span class="res">✗ fail</span>' if not c.ok else '<span class="pass">✓ pass</span>',
            _e(c.detail),
        ]
        for c in checks
    ]
    head = ["phase", "check", "expected", "observed", "result", "detail"]
    body = _table(head, rows, ["" if c.ok else "fail" for c in checks])
    return _section("checks", "Checks", body)


def _charts(journal: Journal) -> str:
    out = []
    scatter = charts.latency_over_time(journal)
    if scatter is None:
        body = '<p class="muted">No traffic samples were recorded.</p>'
    else:
        svg, shown = scatter
        total = len(journal.samples)
        caption = "Each dot is one request, coloured by outcome; dotted lines start phases."
        if journal.faults:
            caption += " Shaded bands are fault windows."
        if shown < total:
            caption += (
                f" Showing {shown:,} of {total:,} requests: failures are kept first and the "
                "rest thinned by an even stride (the tables count every request)."
            )
        body = _figure(svg, _e(caption))
    out.append(_section("latency", "Latency over time", body))
    dist = charts.latency_distribution(journal)
    body = (
        _figure(dist, "Box: p25–p75 with the median; whiskers: p5–p95; p99 and max marked.")
        if dist
        else '<p class="muted">No latencies to compare.</p>'
    )
    out.append(_section("distribution", "Latency distribution per phase", body))
    bars = charts.statuses_and_flags(journal)
    body = (
        _figure(bars, "Left: what the client got. Right: what the proxy recorded, Envoy's "
                "response flags (explained below).") + _flag_table(journal)
        if bars
        else '<p class="muted">No phase ran.</p>'
    )  # fmt: skip
    out.append(_section("statuses", "Status codes and response flags per phase", body))
    out.append(_counters(journal))
    return "".join(out)


def _flag_table(journal: Journal) -> str:
    """What each flag in the chart means (:class:`chaoskit.records.ResponseFlag`), with its
    count per phase; each code also explains itself on hover."""
    rows = data.flag_legend(journal)
    if not rows:
        return ""
    names = [n for n in data.phase_names(journal) if any(n in r.counts for r in rows)]
    body = [
        [
            f'<abbr title="{_e(r.meaning)}"><b>{_e(r.code)}</b></abbr>',
            _e(r.long_name or "–"),
            _e(r.meaning),
            *(_num(str(r.counts.get(n, 0))) for n in names),
        ]
        for r in rows
    ]
    return _table(["flag", "Envoy name", "meaning", *names], body)


def _counters(journal: Journal) -> str:
    title = "Retries, timeouts, overflows and ejections"
    if not journal.phases:
        return _section("resilience", title, '<p class="muted">No phase ran.</p>')
    table = data.counters(journal)
    names = [p.name for p in journal.phases]
    rows = [
        [_e(label), *(_num(f"{per.get(n, 0):g}") for n in names)] for label, per in table.items()
    ]
    chart = charts.resilience_counters(journal)
    lead = (
        _figure(chart, "Proxy counter deltas per phase, summed over clusters.")
        if chart
        else '<p class="muted">No retries, timeouts, overflows, ejections or injected faults '
        "were counted.</p>"
    )
    return _section("resilience", title, lead + _table(["counter", *names], rows))


def _faults(journal: Journal) -> str:
    if not journal.faults:
        return _section("faults", "Faults", '<p class="muted">No fault was applied.</p>')
    rows = []
    for f in journal.faults:
        start, end = data.fault_span(journal, f)
        until = f"{end:.1f} s" if f.end is not None else f"still on at {end:.1f} s"
        rows.append([_e(f.name), _num(f"{start:.1f} s"), _num(until),
                     "<br>".join(_e(r) for r in f.resources) or "–"])  # fmt: skip
    return _section("faults", "Faults", _table(["fault", "from", "until", "resources"], rows))


def _rollbacks(journal: Journal) -> str:
    if not journal.rollbacks:
        body = '<p class="muted">No rollback steps ran (the mesh configuration is restored).</p>'
        return _section("rollbacks", "Rollbacks", body)
    rows = [
        [
            _e(r.name),
            '<span class="pass">✓ ok</span>' if r.ok else '<span class="res">✗ failed</span>',
            _e(r.detail),
        ]
        for r in journal.rollbacks
    ]
    classes = ["" if r.ok else "fail" for r in journal.rollbacks]
    return _section("rollbacks", "Rollbacks", _table(["step", "result", "detail"], rows, classes))


def _notes(journal: Journal) -> str:
    items = [f"<li><b>{_e(p.name)}</b>: {_e(n)}</li>" for p in journal.phases for n in p.notes]
    body = f"<ul>{''.join(items)}</ul>" if items else '<p class="muted">No notes.</p>'
    return _section("notes", "Notes", body)


def _config(journal: Journal) -> str:
    if not journal.config:
        return _section("configuration", "Configuration", '<p class="muted">Not recorded.</p>')
    parts = [
        f"<details open><summary>{_e(name)}</summary><pre>{_e(text)}</pre></details>"
        for name, text in journal.config.items()
    ]
    return _section("configuration", "Configuration", "\n".join(parts))


def _versions(journal: Journal) -> str:
    rows = [[_e(k), _e(v)] for k, v in journal.versions.items()]
    rows.append([_e("journal schema"), _e(journal.schema)])
    return _section("versions", "Versions", _table(["component", "version"], rows))


def render_html(journal: Journal) -> str:
    """The whole report as one HTML document; same journal, same bytes."""
    journal = journal.redacted()  # credentials never reach the page
    word = _VERDICTS.get(journal.status, (journal.status.upper(), ""))[0]
    title = f"{word}: {journal.title or journal.experiment} — chaoskit report"
    error = (
        _section("error", "Error", f'<div class="errorbox">{_e(journal.error)}</div>')
        if journal.error
        else ""
    )
    body = "".join(
        [
            _banner(journal),
            _lessons(journal),
            error,
            _glance(journal),
            _checks(journal),
            _charts(journal),
            _faults(journal),
            _rollbacks(journal),
            _notes(journal),
            _config(journal),
            _versions(journal),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}</main>\n</body>\n</html>\n"
    )
