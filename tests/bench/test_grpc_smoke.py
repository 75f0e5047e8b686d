"""``python -m bench.grpc`` works: its smallest run measures every configuration, writes
well-formed results and leaves no process behind.

A smoke check, not a gate: no figure is compared with a target (timings on a shared CI machine
say nothing), only that every call through every configuration was answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import ROOT, _processes_of_run

pytest.importorskip("grpc")
pytestmark = pytest.mark.integration


def test_smoke_run_calls_through_every_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    argv = [sys.executable, "-m", "bench.grpc", "--smoke", "--out", str(tmp_path)]
    res = subprocess.run(
        argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    (json_file,) = tmp_path.glob("grpc-smoke-*.json")
    (md_file,) = tmp_path.glob("grpc-smoke-*.md")
    run = json.loads(json_file.read_text())
    assert run["errors"] == {}
    plan = run["meta"]["plan"]
    # plaintext, and over TLS where both proxies intercept with their CA (the client verifies it)
    configs = {"direct", "mitmdump", "chaoskit", "direct-tls", "mitmdump-tls", "chaoskit-tls"}

    lat = run["results"]["latency"]
    assert set(lat["targets"]) == configs
    for name, row in lat["targets"].items():
        # every call answered with its own bytes (errors would name the gRPC status)
        assert row["errors"] == {} and lat["warmup_errors"][name] == {}, (name, row)
        assert row["latency_ms"]["n"] == plan["latency_calls"], name
        assert 0 < row["latency_ms"]["p50"] < 1000, name
    assert {k: v["vs"] for k, v in lat["added_ms"].items()} == {
        "mitmdump": "direct", "chaoskit": "direct",
        "mitmdump-tls": "direct-tls", "chaoskit-tls": "direct-tls",
    }  # fmt: skip

    tp = run["results"]["throughput"]
    assert set(tp["results"]) == configs
    for name, runs in tp["runs"].items():
        assert [r["answered"] for r in runs] == [plan["throughput_calls"]], (name, runs)
        assert tp["results"][name]["rps"]["median"] > 0 and tp["results"][name]["errors"] == 0
    assert tp["chaoskit_vs_mitmdump"]["ratio_of_medians"] > 0
    assert tp["chaoskit_tls_vs_mitmdump_tls"]["ratio_of_medians"] > 0

    # chaoskit carried every call of both its configurations as HTTP/2 (its access log has
    # them), not as a tunnel: the warm-ups of both client runs, then the counted calls
    calls = 2 * plan["warmup"] + plan["latency_calls"] + plan["throughput_calls"]
    assert run["results"]["chaoskit_access_log"] == {"chaoskit": calls, "chaoskit-tls": calls}

    assert [t["id"] for t in run["targets"]] == [
        "grpc-latency-p50", "grpc-throughput", "grpc-throughput-tls"
    ]  # fmt: skip
    assert all(t["met"] in (True, False) for t in run["targets"])

    text = md_file.read_text()
    assert "## Targets" in text and "## 1. Latency" in text and "## 2. Throughput" in text
    assert "opaque TCP" in text
    assert "TLS, like for like: chaoskit-tls / mitmdump-tls" in text
    assert _processes_of_run(run["meta"]["run_dir"]) == []
