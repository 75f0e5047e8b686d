"""Real experiments, short: a loopback upstream, the real proxy, real traffic; and the
runner's timing on a fake clock with a fake proxy and network, in milliseconds."""

from __future__ import annotations

import dataclasses
import random
import socket
import textwrap
import threading
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from chaoskit.config.experiment import Traffic
from chaoskit.config.resource import Resource
from chaoskit.experiment import journal as J
from chaoskit.experiment.runner import SCHEDULER_THREAD, BadInput, Runner, load_plan
from chaoskit.experiment.traffic import Driver, Endpoint
from chaoskit.records import GaveUp, Record, ResponseFlag
from chaoskit.testing import Upstream
from chaoskit.testing.clock import FakeClock, FakeThreadSleep


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


@pytest.mark.integration
def test_a_hypothesis_that_holds(tmp_path, upstream):
    journal = Runner(load_plan(write(tmp_path, upstream, BASE)), seed=1).run()
    assert journal.status == J.HELD and journal.exit_code == 0
    assert [p.name for p in journal.phases] == [J.BEFORE, J.METHOD, J.AFTER]
    assert len(journal.samples) == 30 and all(s.status == 200 for s in journal.samples)
    assert journal.rollbacks[0].ok
    assert journal.phases[1].stats["http.downstream_rq_total"] == 11  # 10 requests + 1 probe


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
def test_an_app_that_does_not_start_is_an_error(tmp_path, upstream):
    exp = (
        BASE
        + "apps:\n- {name: broken, command: [python, -c, 'import sys; print(\"boom\"); sys.exit(3)'], ready: 'http://127.0.0.1:1/'}\n"
    )
    journal = Runner(load_plan(write(tmp_path, upstream, exp)), seed=1).run()
    assert journal.status == J.ERROR and journal.exit_code == 3
    assert "exited with status 3" in journal.error and "boom" in journal.error


@pytest.mark.integration
def test_an_app_whose_port_another_process_holds_is_refused(tmp_path, upstream):
    # Before, the other process answered the readiness check and the experiment measured it.
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        exp = (
            BASE
            + f"apps:\n- {{name: web, command: [python, -c, 'import time; time.sleep(30)'], ready: 'http://127.0.0.1:{port}/'}}\n"
        )
        journal = Runner(load_plan(write(tmp_path, upstream, exp)), seed=1).run()
    assert journal.status == J.ERROR and journal.exit_code == 3
    assert f"127.0.0.1:{port} (its ready URL) already accepts connections" in journal.error


def test_a_failed_checks_detail_is_redacted_on_the_console():
    # A probe's error names its URL; a token in its query must not reach a CI log.
    said: list[str] = []
    phase = J.Phase("during", 0.0)
    phase.checks.append(
        J.Check("during", "probe", "probe", "200", "error", False,
                "request to http://web/?access_token=SECRET-123 failed"),
    )  # fmt: skip
    Runner._report_phase(types.SimpleNamespace(say=said.append), phase)  # type: ignore[arg-type]
    assert said and "SECRET-123" not in said[0] and "access_token=" in said[0]


def test_the_flags_a_failed_phase_printed_are_explained_on_the_console():
    said: list[str] = []
    phase = J.Phase(J.METHOD, 0.0, flags={"URX": 3, "UF": 3})
    phase.checks.append(
        J.Check(J.METHOD, "success rate", "success_rate", ">= 99%", "70% of 10", False,
                "3 of 10 requests failed: 503 UF,URX ×3"),
    )  # fmt: skip
    Runner._report_phase(types.SimpleNamespace(say=said.append), phase)  # type: ignore[arg-type]
    assert said[1:] == [
        f"    flag UF on 3 requests: {ResponseFlag.UF.meaning} [UpstreamConnectionFailure]",
        f"    flag URX on 3 requests: {ResponseFlag.URX.meaning} [UpstreamRetryLimitExceeded]",
    ]
    said.clear()
    phase.checks[0] = dataclasses.replace(phase.checks[0], ok=True, detail="")
    Runner._report_phase(types.SimpleNamespace(say=said.append), phase)  # type: ignore[arg-type]
    assert len(said) == 1  # a phase that held: no flag is printed, none explained


# -- the runner's timing on a fake clock --------------------------------------------------------


class FakeProxy:
    """What the runner uses of :class:`chaoskit.proxy.api.Proxy`: no sockets. It answers 503
    while any fault resource is applied, 200 otherwise; every request takes 0.5 fake seconds."""

    url = "http://127.0.0.1:1"
    ca_path = "/nonexistent/ca.pem"
    runtime = object()

    def __init__(self, clock: FakeClock, sleeper: FakeThreadSleep) -> None:
        self.clock = clock
        self.sleeper = sleeper
        self.t0 = clock.now
        self.applied: list[tuple[float, tuple[str, ...]]] = []  # (t since start, refs)
        self.records: list[Record] = []
        self.stats: dict[str, float] = {}
        self.stopped = False
        self.on_request: Any = None  # called with the request number before it is answered

    def url_for(self, workload: str) -> str:
        return self.url

    def apply(self, *resources: Resource) -> None:
        self.applied.append((self.clock.now - self.t0, tuple(r.ref for r in resources)))

    def stop(self) -> None:
        self.stopped = True

    def send(self, endpoint: Endpoint, headers: Mapping[str, str]) -> tuple[int, str]:
        n = int(self.stats.get("http.downstream_rq_total", 0))
        self.stats = {**self.stats, "http.downstream_rq_total": n + 1}
        if self.on_request is not None:
            self.on_request(n)
        faulted = bool(self.applied and self.applied[-1][1])
        self.sleeper.advance(0.5)  # the scheduler's switches due meanwhile happen in here
        return (503 if faulted else 200), ""


class FakeRunner(Runner):
    def __init__(self, plan: Any, clock: FakeClock, sleeper: FakeThreadSleep) -> None:
        self.said: list[str] = []
        super().__init__(plan, seed=1, out=types.SimpleNamespace(
            write=self.said.append, flush=lambda: None,
        ), progress=False, clock=clock, sleep=sleeper)  # fmt: skip
        self.fake = FakeProxy(clock, sleeper)

    def _start_proxy(self) -> Any:
        return self.fake

    def driver(
        self, traffic: Traffic, rng: random.Random, on_sample: Any = lambda s: None
    ) -> Driver:
        d = super().driver(traffic, rng, on_sample)
        d.send = self.fake.send
        return d


TIMED = """\
mesh: [mesh/]
traffic:
  requests: 10
  concurrency: 1
  targets: [{url: "http://web/"}]
hypothesis: {successRate: 0.9}
faults:
- {name: b-early, after: 0s, for: 1500ms, files: [faults/abort.yaml]}
- name: a-late
  after: 1s
  for: 2s
  resources:
  - {apiVersion: chaoskit.dev/v1alpha1, kind: UpstreamFault, metadata: {name: late},
     spec: {host: web, abort: {httpStatus: 500}}}
- name: c-open
  after: 4s
  resources:
  - {apiVersion: chaoskit.dev/v1alpha1, kind: UpstreamFault, metadata: {name: open},
     spec: {host: web, abort: {httpStatus: 502}}}
"""

NO_UPSTREAM = types.SimpleNamespace(port=9)  # the mesh is loaded, never dialled


def fake_runner(tmp_path: Path, experiment: str = TIMED) -> FakeRunner:
    clock = FakeClock(1000.0)
    sleeper = FakeThreadSleep(clock, threads=(SCHEDULER_THREAD,))
    return FakeRunner(load_plan(write(tmp_path, NO_UPSTREAM, experiment)), clock, sleeper)  # type: ignore[arg-type]


def test_faults_switch_on_schedule_on_the_fake_clock(tmp_path):
    runner = fake_runner(tmp_path)
    journal = runner.run()
    abort, late, open_ = (f"UpstreamFault/default/{n}" for n in ("abort-all", "late", "open"))
    # 10 requests of 0.5 s per phase: before [0, 5), method [5, 10), after [10, 15)
    assert [(p.name, p.start, p.end) for p in journal.phases] == [
        (J.BEFORE, 0.0, 5.0), (J.METHOD, 5.0, 10.0), (J.AFTER, 10.0, 15.0),
    ]  # fmt: skip
    assert journal.duration == 15.0
    assert runner.fake.applied == [
        (5.0, (abort,)),  # at t=0 of the method: on before its first request
        (6.0, (late, abort)),  # layered by phase name: a-late, then b-early
        (6.5, (late,)),
        (8.0, ()),
        (9.0, (open_,)),
        (10.0, ()),  # the rollback
    ]
    assert [(w.name, w.start, w.end, w.resources) for w in journal.faults] == [
        ("b-early", 5.0, 6.5, (abort,)),
        ("a-late", 6.0, 8.0, (late,)),
        ("c-open", 9.0, 10.0, (open_,)),  # no ``for``: until the method ends
    ]
    method = [s for s in journal.samples if s.phase == J.METHOD]
    assert [s.t for s in method] == [5.0 + 0.5 * i for i in range(10)]
    assert [s.faulted for s in method] == [True] * 6 + [False] * 2 + [True] * 2
    assert [s.status for s in method] == [503] * 6 + [200] * 2 + [503] * 2
    # ``during`` is judged on the 8 faulted requests only: all failed
    (check,) = journal.phases[1].checks
    assert check.observed == "0% of 8" and not check.ok
    assert journal.status == J.DEVIATED and journal.phases[0].ok and journal.phases[2].ok
    assert [line for line in runner.said if "fault" in line] == [
        "  fault on : b-early\n", "  fault on : a-late\n", "  fault off: b-early\n",
        "  fault off: a-late\n", "  fault on : c-open\n",
    ]  # fmt: skip
    assert runner.fake.stopped


def test_ctrl_c_ends_the_schedulers_wait_and_rolls_back(tmp_path):
    runner = fake_runner(tmp_path)

    def on_request(n: int) -> None:
        if n == 12:  # the method's third request, at t = 6.0: "a-late" just went on
            runner.stop.set()

    runner.fake.on_request = on_request
    journal = runner.run()
    assert journal.status == J.INTERRUPTED and journal.exit_code == 130
    assert journal.rollbacks and journal.rollbacks[0].ok
    # "b-early" was due off at 6.5, after the stop: the scheduler woke and switched nothing;
    # the last apply is the rollback, when the interrupted request ended
    assert [t for t, _ in runner.fake.applied] == [5.0, 6.0, 6.5]
    assert runner.fake.applied[-1] == (6.5, ())
    assert not any(t.name == SCHEDULER_THREAD for t in threading.enumerate())


def test_the_lessons_come_from_the_records(tmp_path):
    runner = fake_runner(tmp_path, TIMED.split("faults:", maxsplit=1)[0])
    spent = GaveUp(2.0, "productpage", "reviews", timeout=3.0, num_retries=2, per_try_timeout=1)
    runner.fake.records = [
        Record(n, f"id{n}", 0.0, 2.0, "mesh", "productpage", "GET", "http", "reviews", "/", 0,
               ("DC",), gave_up=spent)
        for n in range(2)
    ]  # fmt: skip
    journal = runner.run()
    assert journal.status == J.HELD
    assert journal.lessons == [
        "client productpage gave up after 2.0s waiting for reviews; the route allows 3 × 1s "
        "attempts within a 3s timeout — retries here are wasted (2 requests)"
    ]


def test_a_steady_state_not_met_before_injection_is_not_a_deviation(tmp_path):
    """Nothing was injected, so nothing is known about the faults: a distinct verdict and exit
    code, the method and the after phase skipped, the mesh still restored."""
    runner = fake_runner(tmp_path)

    def down(endpoint: Endpoint, headers: Mapping[str, str]) -> tuple[int, str]:
        runner.fake.sleeper.advance(0.5)
        return 503, ""

    runner.fake.send = down  # type: ignore[method-assign]
    journal = runner.run()
    assert journal.status == J.NOT_STEADY and journal.exit_code == 4
    assert [p.name for p in journal.phases] == [J.BEFORE] and not journal.phases[0].ok
    assert runner.fake.applied == [(5.0, ())]  # only the rollback: no fault was ever applied
    assert journal.faults == [] and journal.rollbacks[0].ok
    assert (
        "steady state not met before injection: no fault was injected, the method and "
        "the after phase are skipped\n" in runner.said
    )
