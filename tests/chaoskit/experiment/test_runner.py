"""Real experiments, short: a loopback upstream, the real proxy, real traffic."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoskit.experiment import journal as J
from chaoskit.experiment.runner import BadInput, Runner, load_plan
from chaoskit.testing import Upstream

pytestmark = pytest.mark.integration


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream("web") as up:
        yield up


def write(tmp_path: Path, upstream: Upstream, experiment: str) -> Path:
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "web.yaml").write_text(
        textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: web}}
        spec:
          hosts: [web]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream.port}}}}}]
        """)
    )
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "abort.yaml").write_text(
        textwrap.dedent("""\
        apiVersion: chaoskit.dev/v1alpha1
        kind: UpstreamFault
        metadata: {name: abort-all}
        spec: {host: web, abort: {httpStatus: 503}}
        """)
    )
    path = tmp_path / "experiment.yaml"
    path.write_text(
        "apiVersion: chaoskit.dev/v1alpha1\nkind: Experiment\nmetadata: {name: web}\nspec:\n"
        + textwrap.indent(textwrap.dedent(experiment), "  ")
    )
    return path


BASE = """\
mesh: [mesh/]
traffic:
  requests: 10
  concurrency: 2
  targets: [{url: "http://web/"}]
hypothesis:
  successRate: 0.9
  latency: {p95: 2s}
  probes:
  - {name: home, request: {url: "http://web/"}, expect: {status: 200, bodyContains: [web]}}
"""


def test_a_hypothesis_that_holds(tmp_path, upstream):
    journal = Runner(load_plan(write(tmp_path, upstream, BASE)), seed=1).run()
    assert journal.status == J.HELD and journal.exit_code == 0
    assert [p.name for p in journal.phases] == [J.BEFORE, J.METHOD, J.AFTER]
    assert len(journal.samples) == 30 and all(s.status == 200 for s in journal.samples)
    assert journal.rollbacks[0].ok
    assert journal.phases[1].stats["http.downstream_rq_total"] == 11  # 10 requests + 1 probe


def test_a_fault_that_breaks_it_deviates_during_only(tmp_path, upstream):
    exp = BASE + "faults:\n- {name: abort, files: [faults/abort.yaml]}\n"
    journal = Runner(load_plan(write(tmp_path, upstream, exp)), seed=1).run()
    assert journal.status == J.DEVIATED and journal.exit_code == 1
    before, method, after = journal.phases
    assert before.ok and after.ok and not method.ok
    failed = {c.name for c in method.checks if not c.ok}
    assert failed == {"success rate (statuses 200)", "probe home"}
    assert method.statuses == {"503": 10}
    assert all(s.faulted for s in journal.samples if s.phase == J.METHOD)
    (window,) = journal.faults
    assert window.resources == ("UpstreamFault/default/abort-all",)
    assert journal.config  # the files needed to reproduce are in the journal


def test_same_seed_same_samples(tmp_path, upstream):
    exp = BASE.replace("concurrency: 2", "concurrency: 1") + (
        "faults:\n- name: half\n  resources:\n"
        "  - {apiVersion: chaoskit.dev/v1alpha1, kind: UpstreamFault, metadata: {name: h},"
        " spec: {host: web, abort: {httpStatus: 503}, percentage: {value: 50}}}\n"
    )
    plan = load_plan(write(tmp_path, upstream, exp))
    a = Runner(plan, seed=9).run()
    b = Runner(plan, seed=9).run()
    assert [(s.request_id, s.status) for s in a.samples] == [
        (s.request_id, s.status) for s in b.samples
    ]


def test_interrupt_still_rolls_back(tmp_path, upstream):
    exp = BASE + "faults:\n- {name: abort, files: [faults/abort.yaml]}\n"

    class Interrupted(Runner):
        def _traffic(self, phase, method):
            if phase == J.METHOD:
                self.stop.set()  # what Ctrl-C does
            return super()._traffic(phase, method)

    journal = Interrupted(load_plan(write(tmp_path, upstream, exp)), seed=1).run()
    assert journal.status == J.INTERRUPTED and journal.exit_code == 130
    assert journal.rollbacks and journal.rollbacks[0].ok


def test_bad_input(tmp_path, upstream):
    path = write(tmp_path, upstream, BASE.replace("mesh: [mesh/]", "mesh: [missing/]"))
    with pytest.raises(BadInput) as info:
        load_plan(path)
    assert any("does not exist" in str(i) or "no such file" in str(i) for i in info.value.issues)
    (tmp_path / "x").mkdir()
    fault = (
        "faults:\n- name: bad\n  resources:\n  - {apiVersion: chaoskit.dev/v1alpha1, kind: "
        "UpstreamFault, metadata: {name: b}, spec: {host: nowhere, abort: {httpStatus: 503}}}\n"
    )
    bad_fault = write(tmp_path / "x", upstream, BASE + fault)
    with pytest.raises(BadInput) as info:
        load_plan(bad_fault)
    assert any("not in the registry" in str(i) for i in info.value.issues)


def test_an_app_that_does_not_start_is_an_error(tmp_path, upstream):
    exp = (
        BASE
        + "apps:\n- {name: broken, command: [python, -c, 'import sys; print(\"boom\"); sys.exit(3)'], ready: 'http://127.0.0.1:1/'}\n"
    )
    journal = Runner(load_plan(write(tmp_path, upstream, exp)), seed=1).run()
    assert journal.status == J.ERROR and journal.exit_code == 3
    assert "exited with status 3" in journal.error and "boom" in journal.error


def test_a_failed_checks_detail_is_redacted_on_the_console():
    # A probe's error names its URL; a token in its query must not reach a CI log.
    import types

    said: list[str] = []
    phase = J.Phase("during", 0.0)
    phase.checks.append(
        J.Check("during", "probe", "probe", "200", "error", False,
                "request to http://web/?access_token=SECRET-123 failed"),
    )  # fmt: skip
    Runner._report_phase(types.SimpleNamespace(say=said.append), phase)  # type: ignore[arg-type]
    assert said and "SECRET-123" not in said[0] and "access_token=" in said[0]
