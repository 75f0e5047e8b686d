"""explore finds the smallest plan that breaks a hypothesis, and writes it runnable."""

from __future__ import annotations

import textwrap

import pytest

from chaoskit.experiment import journal as J
from chaoskit.experiment.explore import explore, write_experiment
from chaoskit.experiment.runner import Runner, load_plan
from chaoskit.testing import Upstream

pytestmark = pytest.mark.integration


def test_finds_and_shrinks_the_plan_that_beats_the_retries(tmp_path):
    with Upstream("web") as up:
        path = tmp_path / "web.yaml"
        path.write_text(
            textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {{name: web}}
            spec:
              hosts: [web]
              ports: [{{number: 80, name: http, protocol: HTTP}}]
              resolution: STATIC
              endpoints: [{{address: 127.0.0.1, ports: {{http: {up.port}}}}}]
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {{name: web}}
            spec:
              hosts: [web]
              http:
              - route: [{{destination: {{host: web}}}}]
                retries: {{attempts: 1, retryOn: 5xx}}
            ---
            apiVersion: chaoskit.dev/v1alpha1
            kind: Experiment
            metadata: {{name: web}}
            spec:
              traffic: {{requests: 5, targets: [{{url: "http://web/"}}]}}
              hypothesis: {{successRate: 1}}
            """)
        )
        plan = load_plan(path)
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
