"""Scenario 5's generated test suites: ``n`` chaos tests, and the same tests without the plugin.

Two folders, each its own pytest rootdir (own ``pytest.ini``, so the repository's settings do
not apply):

- ``chaos/``: every test applies a fault (``chaos.fault("web", abort=503, percent=10)``, an
  UpstreamFault layered over the session's base config, the realistic mesh), then sends one
  request through the proxy with ``chaos.session()``. The session's base config is the
  benchmark's realistic mesh, given by a ``chaos_config`` fixture in ``conftest.py``.
- ``plain/``: the same test bodies minus chaoskit: one request straight to the origin with a
  fresh ``requests.Session``; pytest runs with ``-p no:chaoskit``.

The conftest of both writes timings to the JSON file named by ``BENCH_TIMINGS``: the setup time
of every fixture (``pytest_fixture_setup``; pytest resolves a fixture's dependencies before this
hook, so each figure excludes them), the phase durations of every test, and the time of each
``chaos.fault`` call.
"""

from __future__ import annotations

from pathlib import Path

_INI = """\
[pytest]
addopts = -p no:cacheprovider -q -p no:randomly
"""

_CONFTEST_COMMON = """\
import json
import os
import time

import pytest
import requests

TIMINGS = {"fixtures": {}, "phases": {"setup": [], "call": [], "teardown": []}, "apply": []}


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    t0 = time.perf_counter()
    try:
        return (yield)
    finally:
        TIMINGS["fixtures"].setdefault(fixturedef.argname, []).append(time.perf_counter() - t0)


def pytest_runtest_logreport(report):
    TIMINGS["phases"][report.when].append(report.duration)


def pytest_sessionfinish(session):
    path = os.environ.get("BENCH_TIMINGS")
    if path:
        with open(path, "w") as f:
            json.dump(TIMINGS, f)


@pytest.fixture
def timed():
    def run(fn):
        t0 = time.perf_counter()
        result = fn()
        TIMINGS["apply"].append(time.perf_counter() - t0)
        return result

    return run
"""

_CONFTEST_CHAOS = """

@pytest.fixture(scope="session")
def chaos_config():
    with open(os.environ["BENCH_MESH"]) as f:
        return [f.read()]
"""

_CONFTEST_PLAIN = """

@pytest.fixture
def session():
    with requests.Session() as s:
        s.trust_env = False
        yield s
"""

_CHAOS_TEST = """
def test_{i:03d}(chaos, timed):
    timed(lambda: chaos.fault("web", abort=503, percent=10))
    r = chaos.session().get("http://web/", timeout=10)
    assert r.status_code in (200, 503)
"""

_PLAIN_TEST = """
def test_{i:03d}(session):
    r = session.get(ORIGIN, timeout=10)
    assert r.status_code in (200, 503)
"""


def write_suites(root: Path, n: int) -> dict[str, Path]:
    """``chaos-N``, ``plain-N``, ``chaos-1`` and ``plain-1`` suite folders under ``root``."""
    out: dict[str, Path] = {}
    for kind in ("chaos", "plain"):
        for count in sorted({n, 1}):
            folder = root / f"{kind}-{count}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "pytest.ini").write_text(_INI)
            extra = _CONFTEST_CHAOS if kind == "chaos" else _CONFTEST_PLAIN
            (folder / "conftest.py").write_text(_CONFTEST_COMMON + extra)
            template = _CHAOS_TEST if kind == "chaos" else _PLAIN_TEST
            head = "import os\n\nORIGIN = os.environ.get('BENCH_ORIGIN', '')\n"
            body = "".join(template.format(i=i) for i in range(count))
            (folder / f"test_{kind}.py").write_text(head + body)
            out[f"{kind}-{count}"] = folder
    return out
