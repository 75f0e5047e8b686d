"""The benchmark harness works: its smallest slice runs and writes well-formed results.

A smoke check, not a gate: nothing here looks at a figure against a target (timings on a shared
CI machine say nothing). The Python load generator is forced (``--no-wrk``) so the test takes
the same path on machines with and without wrk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _processes_of_run(run_dir: str) -> list[str]:
    """Processes whose environment carries the run's marker (every child of the run has it)."""
    if not Path("/proc/self/environ").exists():
        return []
    marker = f"CHAOSKIT_BENCH_RUN={run_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_smoke_slice_writes_well_formed_results(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    argv = [
        sys.executable, "-m", "bench", "--smoke", "--only", "throughput,latency", "--no-wrk",
        "--no-profile", "--out", str(tmp_path),
    ]  # fmt: skip
    res = subprocess.run(
        argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    (json_file,) = tmp_path.glob("run-smoke-*.json")
    (md_file,) = tmp_path.glob("run-smoke-*.md")
    run = json.loads(json_file.read_text())
    assert run["errors"] == {}
    assert run["meta"]["mode"] == "smoke"
    assert run["meta"]["load_tool"].startswith("python")
    assert set(run["results"]) == {"throughput", "latency"}

    tp = run["results"]["throughput"]
    for name in ("direct", "mitmdump", "lean-master", "chaoskit", "mitmdump-s"):
        row = tp["results"][name]
        assert row["rps"]["median"] > 0, name
        assert row["errors"] == 0 and row["non_2xx"] == 0, name
        if name != "direct":
            assert row["cpu_ms_per_req"]["median"] > 0, name
    assert tp["ratios"]["chaoskit/mitmdump"]["ratio_of_medians"] > 0

    lat = run["results"]["latency"]["targets"]
    for name in ("direct", "chaoskit", "mitmdump", "mitmdump-s"):
        assert lat[name]["requests"] > 0 and lat[name]["errors"] == 0, name
        assert lat[name]["statuses"] == {"200": lat[name]["requests"]}, name

    ids = {t["id"] for t in run["targets"]}
    assert {"throughput", "cpu", "latency-p50", "latency-p99"} <= ids
    for t in run["targets"]:
        assert set(t) == {"id", "what", "target", "figure", "met", "detail"}
        assert t["met"] in (True, False, None)

    text = md_file.read_text()
    assert "## Targets" in text and "## 1. Throughput" in text and "## 2. Latency" in text
    # every process the run started is gone
    assert _processes_of_run(run["meta"]["run_dir"]) == []


def test_websocket_bench_holds_its_sockets_and_answers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.websocket", "--sockets", "5", "--rounds", "5", "--idle", "0",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["idle_sockets"]["opened"] == result["idle_sockets"]["answered_after_idle"] == 5
    assert result["round_trip_chaoskit"]["p50_ms"] > 0
