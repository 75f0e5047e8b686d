"""``chaoskit explore`` end to end: the plans it ran, counted honestly, and a written experiment
whose header replays the search and the found plan exactly."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from chaoskit.cli.explore import tried_line
from chaoskit.experiment.explore import Exploration
from chaoskit.experiment.trials import SHRINK_LIMIT, TIME_BUDGET
from chaoskit.records import ResponseFlag
from chaoskit.testing import Upstream
from tests.chaoskit.cli.test_run import chaoskit
from tests.chaoskit.experiment.test_explore import web_experiment


@pytest.mark.integration
def test_max_examples_bounds_the_search_and_the_header_replays_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Upstream("web") as up:
        (tmp_path / "my exps").mkdir()
        (tmp_path / "found").mkdir()
        web_experiment(tmp_path / "my exps" / "web.yaml", up.port)
        args = ["my exps/web.yaml", "--seed", "3", "--max-examples", "6", "--max-shrinks", "8",
                "--requests", "5", "--kinds", "abort", "--out", "found/web.yaml"]  # fmt: skip
        result = chaoskit("explore", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    examples = re.findall(r"^  example (\d+): ", out, re.M)
    shrinks = re.findall(r"^  shrink step (\d+): ", out, re.M)
    assert 1 <= len(examples) <= 6 and len(shrinks) <= 8
    assert examples == [str(i) for i in range(1, len(examples) + 1)]
    assert f"tried {len(examples) + len(shrinks)} plans on web in " in out
    assert (
        f"{len(examples)} searching (--max-examples 6), {len(shrinks)} shrinking (--max-shrinks 8)"
        in out
    )
    assert "    name: plan-web-abort\n" in out and "    firstN: 2\n" in out  # shrunk to the least
    # the evidence names the proxy's flags, explained: both attempts aborted, retries used up
    assert "    1 of 5 requests failed: 503 URX ×1\n" in out
    assert (
        f"    flag URX on 1 request: {ResponseFlag.URX.meaning} [UpstreamRetryLimitExceeded]\n"
        in out
    )
    header = (tmp_path / "found" / "web.yaml").read_text().splitlines()[:3]
    assert header == [
        "# Found by: chaoskit explore 'my exps/web.yaml' --seed 3 --max-examples 6 "
        "--max-shrinks 8 --time-budget 120s --requests 5 --kinds abort --out found/web.yaml",
        f"# Run in:   {Path.cwd()}",
        "# Replay:   chaoskit run found/web.yaml --seed 3",
    ]


def test_the_tried_line_says_what_cut_the_search_short():
    args = argparse.Namespace(max_examples=15, max_shrinks=4, time_budget="30s")
    result = Exploration(None, [], 6, 4, 12.34, ["web", "db"], SHRINK_LIMIT)
    assert tried_line(result, args) == (
        "tried 10 plans on web, db in 12.3s: 6 searching (--max-examples 15), "
        "4 shrinking (--max-shrinks 4); shrinking stopped at --max-shrinks, a smaller plan may exist"
    )
    result.stopped = TIME_BUDGET
    assert tried_line(result, args).endswith("; stopped by --time-budget 30s")
