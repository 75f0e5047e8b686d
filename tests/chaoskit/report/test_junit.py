"""JUnit XML: one test case per check, failures that say what was expected and seen."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from chaoskit.experiment.journal import INTERRUPTED, NOT_STEADY, Journal
from chaoskit.report import render_junit


def _suite(journal: Journal) -> tuple[ET.Element, ET.Element]:
    text = render_junit(journal)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    return root, suites[0]


def _props(suite: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")}


def test_deviated_run_counts_and_failures(deviated_journal: Journal) -> None:
    root, suite = _suite(deviated_journal)
    for el in (root, suite):
        assert el.get("tests") == "6"  # 4 checks + 2 rollback steps
        assert el.get("failures") == "3"  # 2 checks + 1 rollback
        assert el.get("errors") == "0"
        assert el.get("time") == "50.000"
    assert suite.get("name") == "checkout"
    assert suite.get("timestamp") == "2025-01-02T03:04:05Z"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("checkout.steady-state-before", "success rate"),
        ("checkout.method", "success rate"),
        ("checkout.method", "latency p95"),
        ("checkout.steady-state-after", "probe /health"),
        ("checkout.rollback", "restore mesh"),
        ("checkout.rollback", "flush cache"),
    ]
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "expected >= 99%, observed 71.2%"
    assert failure.get("type") == "success_rate"
    assert failure.text == (
        "expected: >= 99%\nobserved: 71.2%\n"
        "detail: 503 × 120, error × 40: <retries> exhausted & client gave up"
    )
    latency = cases[2].find("failure")
    assert latency is not None and latency.get("message") == "expected p95 < 1s, observed 2s"
    assert cases[0].find("failure") is None
    rollback = cases[5].find("failure")
    assert rollback is not None and "<connection refused>" in (rollback.text or "")
    out = suite.findtext("system-out") or ""
    assert "retries here are wasted" in out and "consecutive_5xx" in out


def test_properties_carry_seed_versions_and_the_way_to_reproduce(held_journal: Journal) -> None:
    _, suite = _suite(held_journal)
    props = _props(suite)
    assert props["seed"] == "42"
    assert props["version.chaoskit"] == "0.1.0"
    assert props["version.mitmproxy"] == "12.1.1"
    assert props["status"] == "held"
    assert props["reproduce"] == "chaoskit run experiments/checkout.yaml --seed 42"


def test_held_run_has_no_failures(held_journal: Journal) -> None:
    _, suite = _suite(held_journal)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    assert suite.find("testcase/failure") is None
    assert suite.find("system-out") is None


def test_error_run_is_an_error_case_with_its_message(error_journal: Journal) -> None:
    root, suite = _suite(error_journal)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "1")
    case = suite.find("testcase")
    assert case is not None
    assert (case.get("classname"), case.get("name")) == ("checkout", "run")
    error = case.find("error")
    assert error is not None and error.get("type") == "error"
    # The ANSI escape is spelled out: a raw ESC would make the file unparsable XML.
    assert error.get("message", "").endswith("<refused>\\x1b[0m")
    assert error.text == error.get("message")


def test_interrupted_run_without_message(error_journal: Journal) -> None:
    error_journal.status = INTERRUPTED
    error_journal.error = ""
    _, suite = _suite(error_journal)
    error = suite.find("testcase/error")
    assert error is not None and error.get("message") == "the run was interrupted"
    assert suite.get("errors") == "1"


def test_deterministic(deviated_journal: Journal) -> None:
    assert render_junit(deviated_journal) == render_junit(deviated_journal)


def test_a_steady_state_not_met_before_injection_is_an_error_not_a_failure(
    deviated_journal: Journal,
) -> None:
    """CI shows "the system was not ready" (errors, the method skipped), not "the faults broke
    it" (failures): nothing was injected."""
    deviated_journal.status, deviated_journal.exit_code = NOT_STEADY, 4
    before = deviated_journal.phases[0]
    before.checks = [dataclasses.replace(c, phase=before.name) for c in deviated_journal.checks]
    deviated_journal.phases[1:] = []
    deviated_journal.rollbacks = deviated_journal.rollbacks[:1]
    root, suite = _suite(deviated_journal)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "0", "2")
    assert suite.get("skipped") == "1" and root.get("errors") == "2"
    cases = suite.findall("testcase")
    errors = [c.find("error") for c in cases if c.find("error") is not None]
    assert [e.get("type") for e in errors] == ["steady-state-not-met"] * 2  # type: ignore[union-attr]
    (skipped,) = [c for c in cases if c.find("skipped") is not None]
    assert skipped.get("classname") == "checkout.method"
    assert "no fault was injected" in (skipped.find("skipped").get("message") or "")  # type: ignore[union-attr]
    assert _props(suite)["status"] == "not-steady"
