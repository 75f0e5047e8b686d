"""``--junit``: a run as JUnit XML, the one format every CI server already shows.

Chaos engineering users keep asking for it (litmuschaos/litmus#2839, krkn-chaos/krkn#655); here each
hypothesis check is a test case, so a deviation lands in the CI test view with what was expected and
what was seen, and a run that broke (or was stopped) is an ``<error>`` rather than a silent absence
of results. Failed rollback steps are test cases too: an environment left broken must not pass
quietly.
Built with ElementTree so every journal string is escaped; control characters, which XML 1.0
cannot carry at all, are spelled ``\\xNN``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from chaoskit.experiment.journal import ERROR, INTERRUPTED, METHOD, NOT_STEADY, Journal
from chaoskit.report import data


def _set(el: ET.Element, **attrs: object) -> ET.Element:
    for key, value in attrs.items():
        el.set(key, data.printable(value))
    return el


def _case(suite: ET.Element, classname: str, name: str) -> ET.Element:
    return _set(ET.SubElement(suite, "testcase"), classname=classname, name=name, time="0")


def render_junit(journal: Journal) -> str:
    """One ``<testsuite>`` named after the experiment; counts and time on both levels."""
    journal = journal.redacted()  # credentials never reach the file
    root = ET.Element("testsuites")
    suite = ET.SubElement(root, "testsuite")
    props = ET.SubElement(suite, "properties")
    for name, value in [
        ("seed", journal.seed),
        ("file", journal.file),
        ("title", journal.title),
        ("status", journal.status),
        ("exit_code", journal.exit_code),
        ("reproduce", data.reproduce_command(journal)),
        *((f"version.{k}", v) for k, v in journal.versions.items()),
        ("journal.schema", journal.schema),
    ]:
        _set(ET.SubElement(props, "property"), name=name, value=value)

    # A steady state not met before injection is not a resilience failure: its failed checks
    # are errors (the system was not ready to experiment on), and the method shows as skipped.
    not_steady = journal.status == NOT_STEADY
    tests = failures = errors = skipped = 0
    for check in journal.checks:
        tests += 1
        case = _case(suite, f"{journal.experiment}.{check.phase}", check.name)
        if check.ok:
            continue
        if not_steady:
            errors += 1
        else:
            failures += 1
        failure = _set(
            ET.SubElement(case, "error" if not_steady else "failure"),
            message=f"expected {check.expected}, observed {check.observed}",
            type="steady-state-not-met" if not_steady else check.kind,
        )
        lines = [f"expected: {check.expected}", f"observed: {check.observed}"]
        if check.detail:
            lines.append(f"detail: {check.detail}")
        failure.text = data.printable("\n".join(lines))

    for step in journal.rollbacks:
        tests += 1
        case = _case(suite, f"{journal.experiment}.rollback", step.name)
        if not step.ok:
            failures += 1
            failure = _set(ET.SubElement(case, "failure"), message=step.detail or "failed",
                           type="rollback")  # fmt: skip
            failure.text = data.printable(step.detail)

    if not_steady:
        tests += 1
        skipped += 1
        case = _case(suite, f"{journal.experiment}.{METHOD}", "faults")
        _set(
            ET.SubElement(case, "skipped"),
            message="steady state not met before injection: no fault was injected",
        )

    if journal.status in (ERROR, INTERRUPTED):
        tests += 1
        errors += 1
        case = _case(suite, journal.experiment, "run")
        message = journal.error or f"the run was {journal.status}"
        error = _set(ET.SubElement(case, "error"), message=message, type=journal.status)
        error.text = data.printable(message)

    out = [f"lesson: {lesson}" for lesson in journal.lessons]
    out += [f"note ({p.name}): {note}" for p in journal.phases for note in p.notes]
    if out:
        ET.SubElement(suite, "system-out").text = data.printable("\n".join(out))

    counts = {
        "tests": tests,
        "failures": failures,
        "errors": errors,
        "time": f"{journal.duration:.3f}",
    }
    _set(root, name="chaoskit", **counts)
    _set(suite, name=journal.experiment, skipped=skipped, timestamp=journal.started_at, **counts)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
