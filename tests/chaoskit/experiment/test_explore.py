"""explore finds the smallest plan that breaks a hypothesis, and writes it runnable."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chaoskit.experiment import journal as J
from chaoskit.experiment.explore import explore, write_experiment
from chaoskit.experiment.runner import Runner, load_plan
from chaoskit.testing import Upstream
from tests.builders import route_to, service_entry

pytestmark = pytest.mark.integration


def web_experiment(path: Path, port: int) -> Path:
    """``web`` behind one retry on 5xx, and a hypothesis that every request succeeds: a plan
    breaks it when some request fails on both of its attempts."""
    path.write_text(
        service_entry("web", port)
        + "---\n"
        + route_to("web", "retries: {attempts: 1, retryOn: 5xx}\n")
        + textwrap.dedent("""\
            ---
            apiVersion: chaoskit.dev/v1alpha1
            kind: Experiment
            metadata: {name: web}
            spec:
              traffic: {requests: 5, targets: [{url: "http://web/"}]}
              hypothesis: {successRate: 1}
            """)
    )
    return path


def test_finds_and_shrinks_the_plan_that_beats_the_retries(tmp_path):
    with Upstream("web") as up:
        plan = load_plan(web_experiment(tmp_path / "web.yaml", up.port))
        result = explore(
            plan, seed=3, max_examples=25, time_budget=60, requests=5, kinds=("abort",)
        )
        assert result.plan is not None
        (fault,) = result.plan
        spec = fault["spec"]
        # two tries per request: the smallest breaking plan aborts exactly the first two attempts
        assert spec["host"] == "web" and "abort" in spec and spec.get("firstN") == 2, spec
        out = write_experiment(plan, result.plan, 3, tmp_path / "found.yaml")
        journal = Runner(load_plan(out), seed=3).run()
        assert journal.status == J.DEVIATED
