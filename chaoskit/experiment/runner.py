"""The experiment lifecycle: steady state before → inject → drive traffic and check during →
roll back (always: also on error or Ctrl-C) → steady state after.

Chaos Toolkit's experiment model (https://chaostoolkit.org/reference/api/experiment/), with
checks *during* the fault as well, and one typed :class:`~chaoskit.experiment.journal.Journal`
as the result. When faults go on and off is decided by the pure
:class:`~chaoskit.experiment.schedule.FaultSchedule`; this module does the I/O, on an injected
clock and sleep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import platform
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chaoskit
from chaoskit.clock import SYSTEM_CLOCK, Clock
from chaoskit.config import validate
from chaoskit.config.experiment import Experiment, FaultPhase, Hypothesis, Probe, Target, Traffic
from chaoskit.config.issues import Issue, Issues, Severity
from chaoskit.config.loader import LoadResult, load_paths, load_text
from chaoskit.config.resource import Resource
from chaoskit.config.yamlsource import Location
from chaoskit.errors import ChaosKitError
from chaoskit.experiment import journal as J
from chaoskit.experiment.apps import proxy_env, start_apps
from chaoskit.experiment.hypothesis import check_phase
from chaoskit.experiment.journal import Journal, Phase, Sample
from chaoskit.experiment.lessons import lessons
from chaoskit.experiment.schedule import FaultSchedule, FaultState, Switch, Window, judged
from chaoskit.experiment.traffic import Driver, Endpoint, Sleep, event_sleep
from chaoskit.records import explain_flags
from chaoskit.redaction import redact_text
from chaoskit.rng import Seeds, new_seed

_PLACEHOLDER = re.compile(r"\$\{(proxy|gateway:(\d{1,5}))\}")

#: A run's exit code by its verdict (any other verdict: 3, the run failed); the CLI's
#: :class:`~chaoskit.cli.exit_codes.ExitCode` has the same numbers.
EXIT_CODES = {J.HELD: 0, J.DEVIATED: 1, J.NOT_STEADY: 4, J.INTERRUPTED: 130}

#: The name of the thread that switches faults on schedule during the method.
SCHEDULER_THREAD = "chaoskit-faults"


class BadInput(ChaosKitError):
    """The experiment or its mesh cannot be used; ``issues`` says why (exit code 2)."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclasses.dataclass
class Plan:
    """A loaded, fully validated experiment: its mesh and each fault phase's resources."""

    experiment: Experiment
    file: Path
    base: list[Resource]
    phases: list[tuple[FaultPhase, list[Resource]]]
    config: dict[str, str]


def _resources(results: list[LoadResult]) -> list[Resource]:
    return [r for lr in results for r in lr.resources]


def load_plan(path: str | Path) -> Plan:
    """Read the experiment and everything it refers to; raise :class:`BadInput` on any error."""
    path = Path(path)
    first = load_paths([path])
    issues = Issues(first.issues)
    experiments = [r for r in first.resources if isinstance(r, Experiment)]
    if first.unreadable or issues.errors:
        raise BadInput(issues.sorted())
    if len(experiments) != 1:
        where = first.resources[0].location if first.resources else Location(str(path), 1)
        message = f"expected exactly one Experiment in {path}, found {len(experiments)}"
        raise BadInput([Issue(Severity.ERROR, where, "", "", message)])
    exp = experiments[0]
    folder = path.parent
    inline = LoadResult(tuple(r for r in first.resources if r is not exp), Issues(), (str(path),))
    mesh = [load_paths([folder / m]) for m in exp.mesh] + [inline]
    base = validate(mesh)
    if not base.ok:
        raise BadInput(base.issues.sorted())
    phases = []
    for phase in exp.faults:
        results = [load_paths([folder / f]) for f in phase.files]
        results += [
            load_text(json.dumps(r), f"{path}:faults[{phase.name}]") for r in phase.resources
        ]
        v = validate([*mesh, *results])
        if not v.ok:
            raise BadInput(v.issues.sorted())
        phases.append((phase, _resources(results)))
    files = sorted({f for lr in [first, *mesh] for f in lr.files})
    config = {}
    for f in files:
        try:
            # Kept for the journal and the report (Journal.redacted() takes the credentials
            # out of every file written from it).
            config[f] = Path(f).read_text(errors="replace")
        except OSError:
            continue
    return Plan(
        exp, path, [r for r in base.mesh.resources if not isinstance(r, Experiment)], phases, config
    )


class Progress:
    """A live progress line on a terminal; one summary line per phase otherwise."""

    def __init__(self, stream: Any, total: int | None, enabled: bool = True) -> None:
        self.stream = stream
        self.total = total
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.enabled = enabled
        self.phase = ""
        self.count = 0
        self.errors = 0
        self.last = 0.0
        self.lock = threading.Lock()

    def start(self, phase: str) -> None:
        self.phase, self.count, self.errors = phase, 0, 0

    def sample(self, s: Sample) -> None:
        with self.lock:
            self.count += 1
            self.errors += s.status == 0 or s.status >= 500
            now = time.monotonic()
            if self.tty and now - self.last > 0.1:
                self.last = now
                total = f"/{self.total}" if self.total else ""
                width = 24
                done = int(width * self.count / self.total) if self.total else 0
                bar = "█" * done + "░" * (width - done) if self.total else ""
                self.stream.write(
                    f"\r  {self.phase:<20} {bar} {self.count}{total} requests, "
                    f"{self.errors} errors "
                )
                self.stream.flush()

    def end(self) -> None:
        if not self.enabled:
            return
        total = f"/{self.total}" if self.total else ""
        prefix = "\r" if self.tty else ""
        self.stream.write(
            f"{prefix}  {self.phase:<20} {self.count}{total} requests, {self.errors} errors"
            + " " * 20
            + "\n"
        )
        self.stream.flush()


class Runner:
    """Runs one plan; ``run()`` never raises for experiment failures — the journal says.

    Every time the journal records comes from ``clock``, and every wait of the runner's own
    threads (the fault scheduler, the traffic's pacing) goes through ``sleep``, which a stop
    (Ctrl-C) interrupts; tests pass :mod:`chaoskit.testing.clock`'s fakes.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        seed: int | None = None,
        out: Any = None,
        progress: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep = event_sleep,
    ) -> None:
        self.plan = plan
        self.exp = plan.experiment
        self.seed = (
            seed
            if seed is not None
            else (self.exp.seed if self.exp.seed is not None else new_seed())
        )
        self.seeds = Seeds(self.seed)
        self.out = out
        self.progress_enabled = progress and out is not None
        self.clock = clock
        self.sleep = sleep
        self.stop = threading.Event()
        self.proxy: Any = None
        self.t0 = 0.0
        #: the fault phases on, by name (traffic samples read it as ``Sample.faulted``)
        self.active: frozenset[str] = frozenset()
        started = datetime.datetime.fromtimestamp(clock.wall(), datetime.UTC)
        self.journal = Journal(
            experiment=self.exp.name,
            title=self.exp.title,
            file=str(plan.file),
            seed=self.seed,
            started_at=started.isoformat(timespec="seconds"),
            versions=_versions(),
            config=plan.config,
        )

    def say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    # -- wiring ---------------------------------------------------------------------------

    def _url(self, url: str) -> str:
        def sub(m: re.Match[str]) -> str:
            if m.group(1) == "proxy":
                return str(self.proxy.url)
            return str(self.proxy.gateway_url(int(m.group(2))))

        return _PLACEHOLDER.sub(sub, url)

    def resolve(self, target: Target) -> Endpoint:
        proxy = None
        if target.via == "mesh":
            proxy = self.proxy.url_for(target.workload) if target.workload else self.proxy.url
        return Endpoint(target, self._url(target.url), proxy)

    def resolve_probe(self, probe: Probe) -> Endpoint:
        return self.resolve(probe.target)

    # -- the lifecycle ------------------------------------------------------------------------

    @contextlib.contextmanager
    def system(self) -> Iterator[None]:
        """The system under test: the proxy with the base mesh, then the apps; always torn
        down in reverse order (``run`` and ``explore`` share this)."""
        self.proxy = self._start_proxy()
        apps: list[Any] = []
        logs = tempfile.TemporaryDirectory(prefix="chaoskit-apps-")
        try:
            self.say(f"proxy {self.proxy.url}  seed {self.seed}")
            if self.exp.apps:
                names = ", ".join(a.name for a in self.exp.apps)
                self.say(f"starting {len(self.exp.apps)} app(s): {names}")
                apps = start_apps(
                    self.exp.apps, cwd=self.plan.file.parent, logs=Path(logs.name), stop=self.stop,
                    env_for=lambda w: proxy_env(self.proxy.url_for(w), self.proxy.ca_path),
                )  # fmt: skip
            yield
        finally:
            self.stop.set()
            try:
                if self.proxy.runtime is not None and not self.journal.rollbacks:
                    self._rollback()
            finally:
                for a in apps:
                    a.stop()
                self._collect_lessons()
                self.proxy.stop()
                logs.cleanup()

    def _start_proxy(self) -> Any:
        """The proxy with the base mesh, started (a socket-free test passes a fake)."""
        from chaoskit.proxy.api import Proxy  # noqa: PLC0415 - loads mitmproxy
        from chaoskit.proxy.binding import http_gateway_ports  # noqa: PLC0415

        mesh = validate([LoadResult(tuple(self.plan.base), Issues(), ())]).mesh
        proxy = Proxy(
            *self.plan.base, seed=self.seed, record_capacity=200_000,
            gateway_ports=dict.fromkeys(http_gateway_ports(mesh), 0),
        )  # fmt: skip
        proxy.start()
        return proxy

    def run(self) -> Journal:
        j = self.journal
        self.t0 = self.clock.monotonic()
        try:
            with self.system():
                before = self._phase(J.BEFORE, self.exp.hypothesis)
                if not before.ok:
                    # Nothing was injected, so nothing is known about the faults: not a
                    # deviation, a system (or hypothesis) to fix before experimenting.
                    j.status = J.NOT_STEADY
                    self.say(
                        "steady state not met before injection: no fault was injected, "
                        "the method and the after phase are skipped"
                    )
                else:
                    self._method()
                    self._rollback()
                    self._phase(J.AFTER, self.exp.hypothesis)
                    j.status = J.HELD if all(p.ok for p in j.phases) else J.DEVIATED
        except KeyboardInterrupt:
            j.status = J.INTERRUPTED
            j.error = "interrupted"
        except (ChaosKitError, OSError) as e:
            j.status, j.error = J.ERROR, str(e)
        j.duration = self._since_start()
        j.exit_code = EXIT_CODES.get(j.status, 3)
        return j

    def _since_start(self) -> float:
        """Seconds since the run started: the journal's time axis."""
        return self.clock.monotonic() - self.t0

    def _phase(self, name: str, hypothesis: Hypothesis, method: bool = False) -> Phase:
        phase = Phase(name, self._since_start())
        self.journal.phases.append(phase)
        stats_before = dict(self.proxy.stats)
        samples = self._traffic(name, method)
        phase.checks = check_phase(
            name,
            hypothesis,
            judged(samples, method=method, has_faults=bool(self.exp.faults)),
            self.resolve_probe,
            self.exp.traffic.timeout if self.exp.traffic else 30.0,
        )
        phase.end = self._since_start()
        phase.statuses, phase.flags = J.summarize(samples)
        after = self.proxy.stats
        phase.stats = {
            k: v - stats_before.get(k, 0) for k, v in after.items() if v != stats_before.get(k, 0)
        }
        self._report_phase(phase)
        return phase

    def _traffic(self, phase: str, method: bool) -> list[Sample]:
        tr = self.exp.traffic
        if tr is None:
            return []
        progress = Progress(self.out, tr.requests, self.progress_enabled)
        progress.start(phase)
        driver = self.driver(tr, self.seeds.stream(f"traffic/{phase}"), progress.sample)
        samples = driver.run(
            self.t0, phase, self.stop, (lambda: bool(self.active)) if method else (lambda: False)
        )
        progress.end()
        if self.stop.is_set():
            raise KeyboardInterrupt
        return self._join_records(samples)

    def driver(
        self,
        traffic: Traffic,
        rng: random.Random,
        on_sample: Callable[[Sample], None] = lambda s: None,
    ) -> Driver:
        """The driver of a phase's traffic, on the runner's clock and sleep."""
        return Driver(
            traffic, self.resolve, rng, on_sample=on_sample, clock=self.clock, sleep=self.sleep
        )

    def _join_records(self, samples: list[Sample]) -> list[Sample]:
        out = self.joined(samples)
        self.journal.samples.extend(out)
        return out

    def joined(self, samples: list[Sample]) -> list[Sample]:
        """The samples with the flags and retries of the proxy's record of each request."""
        by_id = {r.request_id: r for r in self.proxy.records}
        out = []
        for s in samples:
            rec = by_id.get(s.request_id)
            out.append(dataclasses.replace(s, flags=rec.flags, retries=rec.retries) if rec else s)
        return out

    def _method(self) -> None:
        """Faults on a schedule while traffic flows; ``during`` is judged on faulted samples."""
        schedule = FaultSchedule.of(phase for phase, _ in self.plan.phases)
        resources = [r for _, r in self.plan.phases]
        start = self.clock.monotonic()
        done = threading.Event()
        lock = threading.Lock()
        state = FaultState()  # window starts are seconds since the run started

        def switch(s: Switch) -> None:
            nonlocal state
            with lock:
                state, closed = state.switch(s, self._since_start())
                if closed is not None:
                    self._window(closed, resources[closed.index])
                # the layered config first, then the flag traffic samples read
                self.proxy.apply(*[r for i in state.layers() for r in resources[i]])
                self.active = state.active
                self.say(f"  fault {'on ' if s.on else 'off'}: {s.name}")

        for s in schedule.initial:  # faults at t=0 are on before the first request
            switch(s)

        def scheduler() -> None:
            for s in schedule.timed:
                wait = max(0.0, start + s.at - self.clock.monotonic())
                if self.sleep(wait, done) or self.stop.is_set():
                    return
                switch(s)

        thread = threading.Thread(target=scheduler, name=SCHEDULER_THREAD, daemon=True)
        thread.start()
        try:
            during = self.exp.during if self.exp.during is not None else self.exp.hypothesis
            self._phase(J.METHOD, during, method=True)
        finally:
            done.set()
            thread.join(5)
        with lock:
            for window in state.close_all(self._since_start()):
                self._window(window, resources[window.index])

    def _window(self, window: Window, resources: list[Resource]) -> None:
        refs = tuple(r.ref for r in resources)
        self.journal.faults.append(J.FaultWindow(window.name, window.start, window.end, refs))

    def _rollback(self) -> None:
        """Restore the base configuration, then run the experiment's own rollback steps."""
        self.active = frozenset()
        try:
            self.proxy.apply()
            self.journal.rollbacks.append(J.StepResult("restore mesh configuration", True))
            self.say("  rolled back: mesh configuration restored")
        except Exception as e:  # a rollback must be attempted fully and reported, never skipped
            self.journal.rollbacks.append(J.StepResult("restore mesh configuration", False, str(e)))
        import subprocess  # noqa: PLC0415 - only experiments with rollback commands need it

        for step in self.exp.rollbacks:
            try:
                r = subprocess.run(
                    list(step.command),
                    cwd=self.plan.file.parent,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                self.journal.rollbacks.append(
                    J.StepResult(step.name, r.returncode == 0, (r.stdout + r.stderr)[-500:])
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                self.journal.rollbacks.append(J.StepResult(step.name, False, str(e)))

    def _report_phase(self, phase: Phase) -> None:
        for c in phase.checks:
            mark = "✓" if c.ok else "✗"
            line = f"  {mark} {phase.name}: {c.name}: expected {c.expected}, observed {c.observed}"
            if not c.ok and c.detail:  # a probe's error may name its URL, token and all
                line += f" — {redact_text(c.detail)}"
            self.say(line)
        if not phase.ok:  # the flags the failures name, explained (one source: ResponseFlag)
            for line in explain_flags(phase.flags):
                self.say(f"    {line}")

    def _collect_lessons(self) -> None:
        """Clients that gave up before the mesh's timeout and retries were spent
        (:mod:`chaoskit.experiment.lessons`)."""
        self.journal.lessons = lessons(self.proxy.records)


def _versions() -> dict[str, str]:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        mitm = version("mitmproxy")
    except Exception:
        mitm = "?"
    return {
        "chaoskit": chaoskit.__version__,
        "python": platform.python_version(),
        "mitmproxy": mitm,
    }


def run_file(
    path: str | Path,
    *,
    seed: int | None = None,
    out: Any = None,
    on_plan: Callable[[Plan], None] | None = None,
) -> Journal:
    """Load and run; :class:`BadInput` propagates (the CLI turns it into exit code 2)."""
    plan = load_plan(path)
    if on_plan is not None:
        on_plan(plan)
    return Runner(plan, seed=seed, out=out).run()
