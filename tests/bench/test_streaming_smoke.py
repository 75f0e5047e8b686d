"""``python -m bench.streaming`` works: its smallest run measures every configuration, writes
well-formed results and leaves no process behind.

A smoke check, not a gate: no figure is compared with a target (timings on a shared CI machine
say nothing), only that every stream and every download went through whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_smoke import ROOT, _processes_of_run

pytestmark = pytest.mark.integration


def test_smoke_run_streams_through_every_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    argv = [sys.executable, "-m", "bench.streaming", "--smoke", "--out", str(tmp_path)]
    res = subprocess.run(
        argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    (json_file,) = tmp_path.glob("streaming-smoke-*.json")
    (md_file,) = tmp_path.glob("streaming-smoke-*.md")
    run = json.loads(json_file.read_text())
    assert run["errors"] == {}
    plan = run["meta"]["plan"]

    sse = run["results"]["sse"]["targets"]
    events = {"direct": 3, "mitmdump": 3, "chaoskit": 3, "direct-buffered": 1,
              "chaoskit-buffered": 1}  # fmt: skip
    assert set(sse) == set(events)
    for name, n in events.items():
        row = sse[name]
        assert row["requests"] == plan["sse_count"] and row["errors"] == 0, (name, row)
        # every counted stream had all its events: the proxies relayed whole streams
        assert row["events_per_stream"] == {str(n): plan["sse_count"]}, (name, row)
        assert 0 < row["ttfb_ms"]["p50"] < 1000, name
    added = run["results"]["sse"]["added_ms"]
    assert {k: v["vs"] for k, v in added.items()} == {
        "mitmdump": "direct", "chaoskit": "direct", "chaoskit-buffered": "direct-buffered"
    }  # fmt: skip

    dl = run["results"]["download"]
    assert dl["bytes"] == plan["download_mb"] * 2**20
    for name in ("direct", "mitmdump", "chaoskit"):
        row = dl["results"][name]
        assert row["complete"] is True, (name, dl["runs"][name])
        assert row["mb_per_s"]["median"] > 0, name
        assert row["rss_growth_mb"] is not None and row["rss_peak_mb"] > 0, name
    assert [r["bytes"] for r in dl["runs"]["chaoskit"]] == [dl["bytes"]]
    assert dl["results"]["chaoskit"]["rss_of"] == "proxy"

    ids = [t["id"] for t in run["targets"]]
    assert ids == ["sse-ttfb-p50", "download-rss", "download-throughput"]
    assert all(t["met"] in (True, False) for t in run["targets"])

    text = md_file.read_text()
    assert "## Targets" in text and "## 1. SSE" in text and "## 2. 8 MiB download" in text
    assert "python -m bench --fast --only throughput" in text
    assert _processes_of_run(run["meta"]["run_dir"]) == []
