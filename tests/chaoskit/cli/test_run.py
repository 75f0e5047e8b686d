import json
import subprocess
import sys
import textwrap

import pytest

from chaoskit.testing import Upstream

pytestmark = pytest.mark.integration


def experiment(tmp_path, port: int, fault: bool) -> str:
    text = textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: web}}
        spec:
          hosts: [web]
          ports: [{{number: 80, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
        ---
        apiVersion: chaoskit.dev/v1alpha1
        kind: Experiment
        metadata: {{name: web}}
        spec:
          traffic: {{requests: 5, targets: [{{url: "http://web/"}}]}}
          hypothesis: {{successRate: 1}}
        """)
    if fault:
        text += (
            "  faults:\n  - name: abort\n    resources:\n    - {apiVersion: chaoskit.dev/v1alpha1, "
            "kind: UpstreamFault, metadata: {name: a}, spec: {host: web, abort: {httpStatus: 503}}}\n"
        )
    path = tmp_path / f"e{int(fault)}.yaml"
    path.write_text(text)
    return str(path)


def chaoskit(*args):
    return subprocess.run(
        [sys.executable, "-m", "chaoskit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_exit_codes_and_journal(tmp_path):
    with Upstream("web") as up:
        held = chaoskit(
            "run",
            experiment(tmp_path, up.port, False),
            "--seed",
            "4",
            "--journal",
            str(tmp_path / "j.json"),
        )
        assert held.returncode == 0, held.stdout + held.stderr
        assert "verdict: HELD" in held.stdout
        assert json.loads((tmp_path / "j.json").read_text())["seed"] == 4
        deviated = chaoskit("run", experiment(tmp_path, up.port, True), "--quiet")
        assert deviated.returncode == 1
        assert deviated.stdout.startswith("verdict: DEVIATED — 1 of 3 checks failed (method)")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: chaoskit.dev/v1alpha1\nkind: Experiment\nmetadata: {name: x}\nspec: {traffic: 3}\n"
    )
    result = chaoskit("run", str(bad))
    assert (
        result.returncode == 2
        and "spec.traffic" in result.stderr
        and "Traceback" not in result.stderr
    )
