"""``chaoskit explore``: search fault plans for one that breaks the hypothesis, then shrink it.

Hypothesis drives the search and the shrinking (https://hypothesis.readthedocs.io/): each
example is a plan of ``UpstreamFault``s over the experiment's hosts, applied on the running mesh
while a short burst of the experiment's traffic flows; the example *fails* when the ``during``
hypothesis (or the main one) does not hold. Hypothesis then shrinks the failing plan to the
smallest, mildest one that still breaks it, which is written out as a runnable Experiment.
"""

from __future__ import annotations

import dataclasses
import random
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
from chaoskit.experiment.journal import Check
from chaoskit.experiment.runner import Plan, Runner
from chaoskit.strategies import fault_plans


@dataclasses.dataclass
class Exploration:
    """What the search found: the minimal breaking plan (``None`` if none) and its evidence."""

    plan: list[dict[str, Any]] | None
    checks: list[Check]
    examples: int
    elapsed: float
    hosts: list[str]
    output: Path | None = None


def registry_hosts(plan: Plan) -> list[str]:
    """The services of the experiment's mesh, as their ServiceEntries name them."""
    mesh = validate([LoadResult(tuple(plan.base), Issues(), ())]).mesh
    return sorted({h for se in mesh.service_entries for h in se.hosts if "*" not in h})


def explore(
    plan: Plan,
    *,
    seed: int,
    max_examples: int = 20,
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
    state: dict[str, Any] = {"examples": 0, "checks": []}

    def breaks(candidate: list[dict[str, Any]]) -> bool:
        if time.monotonic() - start > time_budget:
            return False  # out of time: stop judging (Hypothesis winds down on its own)
        state["examples"] += 1
        runner.proxy.apply(*candidate)
        runner.proxy.reset()
        checks = _judge(runner, burst, hypothesis)
        broken = not all(c.ok for c in checks)
        verdict = "BREAKS" if broken else "holds"
        say(f"  example {state['examples']}: {_describe(candidate)} → {verdict}")
        if broken:
            state["checks"] = checks
        return broken

    runner.t0 = runner.clock.monotonic()
    found: list[dict[str, Any]] | None = None
    with runner.system():
        strategy = fault_plans(targets, kinds=kinds, min_faults=1, max_faults=3, max_delay=2.0)
        try:
            found = find(
                strategy,
                breaks,
                settings=settings(
                    max_examples=max_examples, deadline=None, database=None,
                    phases=[Phase.generate, Phase.shrink], verbosity=Verbosity.quiet,
                    suppress_health_check=list(HealthCheck),
                ),
                random=random.Random(seed),
            )  # fmt: skip
        except NoSuchExample:
            found = None
        if found is not None:  # judge the minimal plan once more, for its evidence
            runner.proxy.apply(*found)
            runner.proxy.reset()
            state["checks"] = _judge(runner, burst, hypothesis)
    return Exploration(found, state["checks"], state["examples"], time.monotonic() - start, targets)


def _judge(runner: Runner, traffic: Traffic | None, hypothesis: Any) -> list[Check]:
    samples = []
    if traffic is not None:
        driver = runner.driver(traffic, runner.seeds.stream("explore"))
        samples = driver.run(runner.t0, "explore", threading.Event())
    timeout = traffic.timeout if traffic else 30.0
    return check_phase("explore", hypothesis, samples, runner.resolve_probe, timeout)


def _describe(plan: list[dict[str, Any]]) -> str:
    parts = []
    for fault in plan:
        spec = dict(fault["spec"])
        host = spec.pop("host")
        parts.append(f"{host}: " + ", ".join(f"{k}={v}" for k, v in spec.items()))
    return "; ".join(parts) or "no fault"


def write_experiment(plan: Plan, found: list[dict[str, Any]], seed: int, out: Path) -> Path:
    """The original experiment with its faults replaced by the found plan: runnable as is."""
    docs = list(yaml.safe_load_all(plan.file.read_text()))
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Experiment":
            spec = doc.setdefault("spec", {})
            spec["faults"] = [{"name": "explored", "resources": found}]
            spec["seed"] = seed
            if out.parent.resolve() != plan.file.parent.resolve():
                base = plan.file.parent.resolve()
                spec["mesh"] = [str(base / m) for m in spec.get("mesh", [])]
    header = f"# Found by: chaoskit explore {plan.file.name} --seed {seed}\n"
    # replaced atomically, never through a link (an experiment is meant to be shared: umask mode)
    return safefiles.write_file(out, header + yaml.safe_dump_all(docs, sort_keys=False),
                                private=False)  # fmt: skip
