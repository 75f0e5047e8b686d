"""The soak's short version, for CI: the same runner as ``python tests/soak/soak.py``, about 30 s
in all (20 s of traffic at 100 req/s). Bounds are generous on purpose (RSS +40 MB after warm-up,
64 descriptors); nothing here is a timing target. ``CHAOSKIT_LONG=1`` runs 120 s at 200 req/s.
"""

from __future__ import annotations

import os

import pytest

from tests.soak.soak import BAD_STDERR, Settings, run_soak, summary

pytestmark = pytest.mark.integration

LONG = os.environ.get("CHAOSKIT_LONG") == "1"


def test_stderr_patterns_catch_what_they_should():
    for line in [
        "Task was destroyed but it is pending!",
        "sys:1: ResourceWarning: unclosed <socket.socket fd=12>",
        "Unclosed client session",
        "RuntimeWarning: coroutine 'x' was never awaited",
        "Traceback (most recent call last):",
        "chaoskit: ERROR: chaoskit core error on request 1",
    ]:
        assert BAD_STDERR.search(line), line
    for line in ["chaoskit proxy stopped", "chaoskit proxy: reloaded 3 resources"]:
        assert not BAD_STDERR.search(line), line


@pytest.mark.timeout(300 if LONG else 90)
def test_short_soak():
    cfg = (
        Settings(duration=120, rate=200, warmup=20)
        if LONG
        else Settings(duration=20, rate=100, warmup=6)
    )
    report = run_soak(cfg)
    text = summary(report)
    print(text)
    assert report["ok"], text
    # the invariants, spelled out (report["ok"] already covers them)
    assert report["lost_count"] == 0
    assert report["duplicated"] == [] and report["missing_count"] == 0 and report["extra"] == []
    assert report["disagree_count"] == 0
    assert report["proxy_downstream_rq_total"] == report["log_lines"] == report["requests"]
    assert report["resources"]["rss_mb"]["growth_after_warmup"] <= 40
    assert report["stderr_bad"] == []
    # the mix really exercised what it claims to
    flags = report["flags"]
    for flag in ("DC", "DI", "NR", "UC", "UF", "URX", "UT"):
        assert flags.get(flag, 0) > 0, (flag, flags)
    assert report["requests"] >= cfg.duration * cfg.rate * 0.8


def test_the_proxy_process_shows_what_the_soak_looks_for():
    """mitmproxy puts its own handler on the root logger, so asyncio's and mitmproxy's errors
    would never reach standard error: ``chaoskit proxy`` routes them there."""
    import subprocess
    import sys

    script = (
        "import asyncio, logging\n"
        "from mitmproxy import options\n"
        "from chaoskit.cli.proxy import log_to_stderr\n"
        "from chaoskit.proxy.runtime import make_master\n"
        "async def main():\n"
        "    make_master(options.Options())  # installs mitmproxy's root log handler\n"
        "    log_to_stderr()\n"
        "    logging.getLogger('mitmproxy.master').error(\n"
        "        \"Unhandled asyncio error: {'message': 'Task was destroyed but it is pending!'}\")\n"
        "    logging.getLogger('asyncio').error('Unclosed client session')\n"
        "    logging.getLogger('mitmproxy.proxy.server').info('client connect')\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any("Task was destroyed" in line and BAD_STDERR.search(line) for line in lines)
    assert any("Unclosed client session" in line for line in lines)
    assert not any("client connect" in line for line in lines)  # info stays quiet
