import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

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


def test_a_steady_state_not_met_before_any_fault_is_not_a_deviation(tmp_path):
    """The service is down before anything is injected (connection refused): exit 4, its own
    verdict, the flags on the console explained, and CI sees errors with the method skipped."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed: refused
    junit = tmp_path / "junit.xml"
    result = chaoskit("run", experiment(tmp_path, port, True), "--seed", "1", "--junit", str(junit))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "5 of 5 requests failed: 503 UF ×5" in result.stdout
    assert (
        "    flag UF on 5 requests: connecting to the upstream failed (503) [UpstreamConnectionFailure]\n"
        in result.stdout
    )
    assert (
        "verdict: NOT STEADY — steady state not met before injection: 1 of 1 checks failed "
        "(steady-state-before); no fault was injected, so this is not a deviation" in result.stdout
    )
    assert "fault on" not in result.stdout and "Traceback" not in result.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert [suite.get(k) for k in ("failures", "errors", "skipped")] == ["0", "1", "1"]


def test_outputs_replace_symlinks_and_the_journal_and_junit_are_owner_only(tmp_path):
    """A link planted at an output path is replaced, never written through (a request path
    once landed in a shell rc file that way); the journal and JUnit name every request."""
    victims, outputs = {}, {}
    for flag, name in (("--journal", "j.json"), ("--junit", "j.xml"), ("--report", "r.html")):
        victims[name] = tmp_path / f"victim-{name}"
        victims[name].write_text("export PATH=/usr/bin\n")
        outputs[flag] = tmp_path / "out" / name
    (tmp_path / "out").mkdir()
    for path in outputs.values():
        path.symlink_to(victims[path.name])
    old = os.umask(0o022)
    try:
        with Upstream("web") as up:
            args = [a for flag, path in outputs.items() for a in (flag, str(path))]
            result = chaoskit("run", experiment(tmp_path, up.port, False), "--seed", "4", *args)
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stdout + result.stderr
    for victim in victims.values():
        assert victim.read_text() == "export PATH=/usr/bin\n"
    modes = {p.name: stat.S_IMODE(p.lstat().st_mode) for p in outputs.values()}
    assert modes == {"j.json": 0o600, "j.xml": 0o600, "r.html": 0o644}
    assert json.loads(outputs["--journal"].read_text())["seed"] == 4
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["j.json", "j.xml", "r.html"]


def test_an_output_that_is_a_folder_or_a_fifo_is_refused_before_anything_runs(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    path = experiment(tmp_path, 1, False)
    for flag, target, kind in (("--journal", tmp_path, "a folder"),
                               ("--report", tmp_path / "fifo", "a FIFO")):  # fmt: skip
        result = chaoskit("run", path, flag, str(target))
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"chaoskit run: {flag} {target}: is {kind}, not a regular file" in result.stderr
        assert "experiment web" not in result.stdout and "Traceback" not in result.stderr


def test_report_without_matplotlib_is_refused_with_the_install_line(tmp_path):
    """matplotlib is the optional chaoskit[report]; without it --report says so in one line,
    before anything runs (simulated: sys.modules["matplotlib"] = None makes its import fail)."""
    path = experiment(tmp_path, 1, False)
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "from chaoskit.cli import main; sys.exit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "run", path, "--report", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "chaoskit run: --report: the HTML report needs matplotlib, which is not installed: "
        "pip install 'chaoskit[report]'"
    ]
    assert "experiment web" not in result.stdout
