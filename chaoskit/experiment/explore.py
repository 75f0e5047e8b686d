"""``chaoskit explore``: search fault plans for one that breaks the hypothesis, then shrink it.

Hypothesis drives the search and the shrinking (https://hypothesis.readthedocs.io/): each
example is a plan of ``UpstreamFault``s over the experiment's hosts, applied on the running mesh
while a short burst of the experiment's traffic flows; the example *fails* when the ``during``
hypothesis (or the main one) does not hold. Hypothesis then shrinks the failing plan to the
smallest, mildest one that still breaks it, faults that do not matter are dropped, and the plan
is written out as a runnable Experiment. How many plans ran, and what bounds them:
:mod:`chaoskit.experiment.trials`.
"""

from __future__ import annotations

import dataclasses
import random
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, Verbosity, find, settings
from hypothesis.errors import NoSuchExample

from chaoskit import safefiles
from chaoskit.config import validate
from chaoskit.config.experiment import Traffic
from chaoskit.config.issues import Issues
from chaoskit.config.loader import LoadResult
from chaoskit.experiment.hypothesis import check_phase
from chaoskit.experiment.journal import Check, summarize
from chaoskit.experiment.runner import Plan, Runner
from chaoskit.experiment.trials import Trials, drop_harmless, plan_key
from chaoskit.strategies import fault_plans


@dataclasses.dataclass
class Exploration:
    """What the search found: the minimal breaking plan (``None`` if none) and its evidence,
    and how many plans were run to find it (see :mod:`chaoskit.experiment.trials`)."""

    plan: list[dict[str, Any]] | None
    checks: list[Check]
    #: plans generated and run before the first break (at most ``max_examples``)
    generated: int
    #: plans run while shrinking the first breaking one (at most ``max_shrinks``)
    shrinks: int
    elapsed: float
    hosts: list[str]
    #: why the search stopped early ("time budget", "shrink limit"), "" when it did not
    stopped: str = ""
    output: Path | None = None
    #: the response flags the proxy recorded under the found plan, with their counts
    flags: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def examples(self) -> int:
        """Every plan run on the system."""
        return self.generated + self.shrinks


def registry_hosts(plan: Plan) -> list[str]:
    """The services of the experiment's mesh, as their ServiceEntries name them."""
    mesh = validate([LoadResult(tuple(plan.base), Issues(), ())]).mesh
    return sorted({h for se in mesh.service_entries for h in se.hosts if "*" not in h})


def explore(
    plan: Plan,
    *,
    seed: int,
    max_examples: int = 20,
    max_shrinks: int = 50,
    time_budget: float = 120.0,
    requests: int = 10,
    hosts: Sequence[str] | None = None,
    kinds: Sequence[str] = ("abort", "delay", "reset"),
    say: Callable[[str], None] = lambda s: None,
) -> Exploration:
    exp = plan.experiment
    if exp.traffic is None and not exp.hypothesis.probes:
        raise ValueError("explore needs traffic or probes to judge a plan")
    targets = list(hosts) if hosts else registry_hosts(plan)
    if not targets:
        raise ValueError("no hosts to put faults on: the mesh has no ServiceEntry")
    hypothesis = exp.during if exp.during is not None else exp.hypothesis
    runner = Runner(plan, seed=seed)
    burst = (
        dataclasses.replace(
            exp.traffic, requests=min(requests, exp.traffic.requests or requests), duration=None
        )
        if exp.traffic is not None
        else None
    )
    start = time.monotonic()
    flags: dict[str, dict[str, int]] = {}  # by plan key: the evidence of each plan run

    def judge(candidate: list[dict[str, Any]]) -> tuple[bool, list[Check]]:
        runner.proxy.apply(*candidate)
        runner.proxy.reset()
        checks, flags[plan_key(candidate)] = _judge(runner, burst, hypothesis)
        return not all(c.ok for c in checks), checks

    def on_run(step: str, candidate: list[dict[str, Any]], broken: bool) -> None:
        say(f"  {step}: {_describe(candidate)} → {'BREAKS' if broken else 'holds'}")

    trials = Trials(
        judge, max_examples, max_shrinks, lambda: time_budget - (time.monotonic() - start), on_run
    )
    runner.t0 = runner.clock.monotonic()
    found: list[dict[str, Any]] | None = None
    with runner.system():
        strategy = fault_plans(targets, kinds=kinds, min_faults=1, max_faults=3, max_delay=2.0)
        try:
            found = find(
                strategy,
                trials,
                settings=settings(
                    max_examples=max_examples, deadline=None, database=None,
                    phases=[Phase.generate, Phase.shrink], verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck),
                ),
                random=random.Random(seed),
            )  # fmt: skip
        except NoSuchExample:
            found = None
        if found is not None:
            found = drop_harmless(found, trials)
    return Exploration(
        found,
        trials.checks(found) if found is not None else [],
        trials.generated,
        trials.shrinks,
        time.monotonic() - start,
        targets,
        trials.stopped,
        flags=flags.get(plan_key(found), {}) if found is not None else {},
    )


def _judge(
    runner: Runner, traffic: Traffic | None, hypothesis: Any
) -> tuple[list[Check], dict[str, int]]:
    """One burst under the applied plan: the checks, and the flags its requests carried."""
    samples = []
    if traffic is not None:
        driver = runner.driver(traffic, runner.seeds.stream("explore"))
        samples = runner.joined(driver.run(runner.t0, "explore", threading.Event()))
    timeout = traffic.timeout if traffic else 30.0
    checks = check_phase("explore", hypothesis, samples, runner.resolve_probe, timeout)
    return checks, summarize(samples)[1]


def _describe(plan: list[dict[str, Any]]) -> str:
    parts = []
    for fault in plan:
        spec = dict(fault["spec"])
        host = spec.pop("host")
        parts.append(f"{host}: " + ", ".join(f"{k}={v}" for k, v in spec.items()))
    return "; ".join(parts) or "no fault"


def write_experiment(
    plan: Plan, found: list[dict[str, Any]], seed: int, out: Path, *, command: str = ""
) -> Path:
    """The original experiment with its faults replaced by the found plan: runnable as is.

    The header says how to get it again: ``command`` is the explore command line as run (its
    path as given and every option, so the search replays exactly), the folder it ran in (the
    paths are relative to it), and the ``chaoskit run`` line that replays the found plan.
    """
    docs = list(yaml.safe_load_all(plan.file.read_text()))
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Experiment":
            spec = doc.setdefault("spec", {})
            spec["faults"] = [{"name": "explored", "resources": found}]
            spec["seed"] = seed
            if out.parent.resolve() != plan.file.parent.resolve():
                base = plan.file.parent.resolve()
                spec["mesh"] = [str(base / m) for m in spec.get("mesh", [])]
    found_by = command or shlex.join(["chaoskit", "explore", str(plan.file), "--seed", str(seed)])
    header = (
        f"# Found by: {found_by}\n"
        f"# Run in:   {Path.cwd()}\n"
        f"# Replay:   {shlex.join(['chaoskit', 'run', str(out), '--seed', str(seed)])}\n"
    )
    # replaced atomically, never through a link (an experiment is meant to be shared: umask mode)
    return safefiles.write_file(out, header + yaml.safe_dump_all(docs, sort_keys=False),
                                private=False)  # fmt: skip
