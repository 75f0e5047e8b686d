"""The chaoskit pytest plugin (entry point ``pytest11``): options, marker, header, reports.

A thin shell: fixtures live in :mod:`chaoskit_pytest.fixtures`, the per-test handle in
:mod:`chaoskit_pytest.handle`, assertions in :mod:`chaoskit_pytest.assertions`, and everything they
do is :mod:`chaoskit` library code.
"""

from __future__ import annotations

import argparse
import json
import re
import warnings
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from chaoskit import safefiles
from chaoskit.rng import new_seed, parse_seed

from .failures import config_error_repr, is_config_error
from .fixtures import (
    Settings,
    _chaos_marked,
    chaos,
    chaos_config,
    chaos_proxy,
    chaos_proxy_options,
    handle_key,
    settings_key,
)
from .markers import MARKER_HELP, chaos_mark_key, evaluate_chaos_marks

__all__ = [
    "_chaos_marked",
    "chaos",
    "chaos_config",
    "chaos_proxy",
    "chaos_proxy_options",
]

CACHE_KEY = "chaoskit/seed"
_outcomes_key = pytest.StashKey[dict[str, str]]()


def seed_option(text: str) -> int | str:
    """``--chaos-seed`` values: a whole number, ``random`` or ``last``."""
    if text in ("random", "last"):
        return text
    try:
        return parse_seed(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a seed: use a whole number, 'random' or 'last'"
        ) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaoskit", "chaoskit: Istio traffic rules and faults for tests")
    group.addoption(
        "--chaos-config",
        action="append",
        default=[],
        metavar="PATH",
        dest="chaos_config",
        help="Istio/chaoskit YAML file or folder: the session's base mesh config (repeatable; "
        "replaces the chaos_config ini option).",
    )
    group.addoption(
        "--chaos-seed",
        type=seed_option,
        default=None,
        metavar="N|random|last",
        dest="chaos_seed",
        help="Seed for every random decision of the proxy; 'last' replays the previous run's "
        "seed (kept in the pytest cache). Default: the chaos_seed ini option, else random.",
    )
    group.addoption(
        "--chaos-report",
        default=None,
        metavar="DIR",
        dest="chaos_report",
        help="Write one JSON file per test that used chaos (its records, stats and faults) to "
        "DIR/tests/, and DIR/index.json listing every test with failing tests' records.",
    )
    parser.addini(
        "chaos_config",
        type="paths",
        default=[],
        help="chaoskit: base mesh config files or folders, relative to the ini file.",
    )
    parser.addini("chaos_seed", default="random", help="chaoskit: default for --chaos-seed.")
    parser.addini("chaos_report", default="", help="chaoskit: default for --chaos-report.")
    parser.addini(
        "chaos_settle_timeout",
        default="5",
        help="chaoskit: seconds that reading records waits for requests still in flight.",
    )


class XdistHooks:
    """Hand the controller's seed to every worker, so ``-n`` runs replay like serial ones."""

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["chaoskit_seed"] = node.config.stash[settings_key].seed


def _session_seed(config: pytest.Config) -> tuple[int, str]:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "chaoskit_seed" in workerinput:
        return int(workerinput["chaoskit_seed"]), "controller"
    value = config.getoption("chaos_seed")
    if value is None:
        ini = str(config.getini("chaos_seed") or "random").strip()
        try:
            value = seed_option(ini)
        except argparse.ArgumentTypeError as e:
            raise pytest.UsageError(f"chaos_seed ini option: {e}") from None
    if value == "random":
        return new_seed(), "random"
    if value == "last":
        cache = getattr(config, "cache", None)
        last = cache.get(CACHE_KEY, None) if cache is not None else None
        if isinstance(last, int) and not isinstance(last, bool):
            return last, "last"
        return new_seed(), "last-missing"
    assert isinstance(value, int)
    return value, "given"


def _base_config(config: pytest.Config) -> list[Any]:
    given: list[str] = config.getoption("chaos_config")
    if given:
        invocation = config.invocation_params.dir
        return [str(invocation / p) for p in given]
    return [str(p) for p in config.getini("chaos_config")]


def _report_dir(config: pytest.Config) -> Path | None:
    text = config.getoption("chaos_report") or config.getini("chaos_report")
    if not text:
        return None
    path = Path(text)
    return path if path.is_absolute() else config.invocation_params.dir / path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "chaoskit-xdist")
    is_worker = hasattr(config, "workerinput")
    seed, origin = _session_seed(config)
    cache = getattr(config, "cache", None)
    if cache is not None and not is_worker:
        cache.set(CACHE_KEY, seed)
    base = _base_config(config)
    if base:
        from chaoskit.errors import ConfigError  # noqa: PLC0415 - only with a base config
        from chaoskit.sources import validated  # noqa: PLC0415

        try:
            validated(*base)
        except ConfigError as e:
            raise pytest.UsageError(f"chaoskit: the base config is invalid:\n{e}") from None
    try:
        settle = float(config.getini("chaos_settle_timeout"))
    except ValueError:
        raise pytest.UsageError(
            "chaos_settle_timeout ini option: "
            f"{config.getini('chaos_settle_timeout')!r} is not a number of seconds"
        ) from None
    report_dir = _report_dir(config)
    if report_dir is not None and not is_worker:
        tests_dir = report_dir / "tests"
        tests_dir.mkdir(parents=True, exist_ok=True)
        for old in tests_dir.glob("*.json"):
            old.unlink()
    config.stash[settings_key] = Settings(
        seed=seed,
        seed_origin=origin,
        base_config=base,
        report_dir=report_dir,
        settle_timeout=settle,
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    s = config.stash[settings_key]
    lines = [f"chaoskit: seed={s.seed} (replay with --chaos-seed={s.seed})"]
    if s.seed_origin == "last-missing":
        lines.append("chaoskit: --chaos-seed=last found no seed in the cache; chose a new one")
    if s.base_config:
        lines.append("chaoskit: base config: " + ", ".join(s.base_config))
    if s.proxy_url:
        lines.append(f"chaoskit: proxy {s.proxy_url}")
    return lines


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[chaos_mark_key] = evaluate_chaos_marks(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.excinfo is not None and is_config_error(call.excinfo):
        short = config_error_repr(item, call.excinfo)
        if short is not None:
            report.longrepr = short
    handle = item.stash.get(handle_key, None)
    if handle is None:
        return report
    if report.failed:
        report.sections.append(("chaoskit records", handle.describe()))
    outcomes = item.stash.setdefault(_outcomes_key, {})
    outcomes[report.when] = report.outcome
    settings = item.config.stash[settings_key]
    if report.when == "teardown" and settings.report_dir is not None:
        _write_test_report(settings.report_dir, handle.to_dict(), outcomes)
    return report


def _overall(outcomes: dict[str, str]) -> str:
    values = set(outcomes.values())
    return "failed" if "failed" in values else "skipped" if "skipped" in values else "passed"


def report_file_name(nodeid: str) -> str:
    """A file name for a test: readable, unique (crc32 of the node id), not too long."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")[:120]
    return f"{readable}-{zlib.crc32(nodeid.encode()):08x}.json"


def _write_report_file(path: Path, data: dict[str, Any]) -> None:
    """Owner-only (records name every request), replaced atomically, never through a link; a
    file that cannot be written is a warning, not an error in the test that just ran."""
    try:
        safefiles.write_file(path, json.dumps(data, indent=2, default=str), private=True)
    except OSError as e:
        warnings.warn(
            f"chaoskit: --chaos-report not written: {safefiles.describe(e)}",
            pytest.PytestWarning,
            stacklevel=1,
        )


def _write_test_report(report_dir: Path, data: dict[str, Any], outcomes: dict[str, str]) -> None:
    from chaoskit.redaction import redact_query  # noqa: PLC0415 - imports yaml

    tests_dir = report_dir / "tests"
    tests_dir.mkdir(parents=True, exist_ok=True)
    data = {"outcome": _overall(outcomes), "phases": dict(outcomes), **data}
    # a token in a query string stays out of the file, as in journals (chaoskit.redaction)
    data["records"] = [
        {**r, "path": redact_query(r["path"])} if isinstance(r.get("path"), str) else r
        for r in data.get("records", [])
    ]
    _write_report_file(tests_dir / report_file_name(str(data["nodeid"])), data)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    settings = config.stash.get(settings_key, None)
    if settings is None or settings.report_dir is None or hasattr(config, "workerinput"):
        return
    tests: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for path in sorted((settings.report_dir / "tests").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        tests.append(
            {
                "nodeid": data["nodeid"],
                "outcome": data["outcome"],
                "seed": data["seed"],
                "requests": len(data["records"]),
                "file": f"tests/{path.name}",
            }
        )
        if data["outcome"] == "failed":
            failed.append({k: data[k] for k in ("nodeid", "seed", "declared_faults", "records")})
    index = {"session_seed": settings.seed, "tests": tests, "failed": failed}
    _write_report_file(settings.report_dir / "index.json", index)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    settings = config.stash.get(settings_key, None)
    if settings is None:
        return
    if settings.proxy_url and config.get_verbosity() >= 0:
        admin = f" (admin {settings.admin_url})" if settings.admin_url else ""
        terminalreporter.write_line(
            f"chaoskit: proxy {settings.proxy_url}{admin}, seed={settings.seed} "
            f"(replay with --chaos-seed={settings.seed})"
        )
    if settings.report_dir is not None and not hasattr(config, "workerinput"):
        count = len(list((settings.report_dir / "tests").glob("*.json")))
        terminalreporter.write_line(
            f"chaoskit: wrote {count} test report{'s' if count != 1 else ''} to "
            f"{settings.report_dir}"
        )
