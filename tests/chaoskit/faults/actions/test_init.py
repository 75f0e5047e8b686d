"""The actions table: every place that lists the UpstreamFault actions derives from it or is
checked against it, so adding an action cannot leave one of them behind."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chaoskit_pytest.handle import Chaos
from chaoskit_pytest.resources import build_upstream_fault

from chaoskit.config.loader import load_text
from chaoskit.config.upstream_fault import SEQUENCE_STEPS, UpstreamFault
from chaoskit.faults import actions as registry
from chaoskit.faults.actions import ACTION_NAMES, ACTIONS, BY_NAME, Stage, docs_table
from chaoskit.faults.tcp.actions import TCP_ACTION_NAMES
from chaoskit.strategies import KINDS

DOCS = Path(__file__).resolve().parents[4] / "docs"


def table_after(text: str, heading: str) -> list[str]:
    """The lines of the first Markdown table after ``heading``."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_one_module_per_action_in_the_table_in_apply_order() -> None:
    modules = sorted(p.stem for p in Path(registry.__file__).parent.glob("*.py"))
    assert modules == sorted(["__init__", "base", *(a.attr for a in ACTIONS)])
    assert ACTION_NAMES == (
        "delay", "abort", "reset", "hang", "slowBody", "pauseBody", "truncateBody",
        "corruptBody", "webSocket",
    )  # fmt: skip
    assert [a.stage for a in ACTIONS][:1] == [Stage.DELAY]  # "delay first"
    assert {a.name: a for a in ACTIONS} == BY_NAME
    assert len({a.mildness for a in ACTIONS}) == len(ACTIONS)


def test_configuration_md_actions_table_is_the_registry() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    section = text[text.index("## 10. UpstreamFault") :]
    assert table_after(section, "### Actions") == docs_table().splitlines(), (
        "docs/configuration.md §10 'Actions' drifted from the registry; paste this:\n"
        + docs_table()
    )


def test_resilience_md_table_names_every_action() -> None:
    text = (DOCS / "resilience.md").read_text(encoding="utf-8")
    rows = table_after(text, "## UpstreamFault")[2:]
    named = {m.group(1) for row in rows if (m := re.match(r"\| `(\w+)", row))}
    assert named == set(ACTION_NAMES)


def test_pytest_md_and_chaos_fault_take_every_action_keyword() -> None:
    params = inspect.signature(Chaos.fault).parameters
    text = (DOCS / "pytest.md").read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if line.startswith("| `fault(host, *,")]
    for action in ACTIONS:
        assert params[action.attr].kind is inspect.Parameter.KEYWORD_ONLY, action.attr
        assert f" {action.attr}=" in row, action.attr


def test_upstream_fault_has_one_field_per_action() -> None:
    fields = {f.name for f in dataclasses.fields(UpstreamFault)}
    assert {a.attr for a in ACTIONS} <= fields
    assert (*ACTION_NAMES, *TCP_ACTION_NAMES, "pass") == SEQUENCE_STEPS


#: A ``chaos.fault(...)`` keyword value per action: a new action needs one here.
KEYWORDS = {
    "delay": "1ms",
    "abort": 503,
    "reset": "connect",
    "hang": True,
    "slow_body": 10,
    "pause_body": {"afterEvents": 1, "for": "1ms"},
    "truncate_body": 0,
    "corrupt_body": 1,
    "websocket": {"messageDelay": "1ms"},
}


def test_every_action_has_a_keyword_example() -> None:
    assert set(KEYWORDS) == {a.attr for a in ACTIONS}


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_each_action_round_trips_keyword_yaml_and_config(action: registry.Action[object]) -> None:
    """``chaos.fault(<attr>=…)`` writes the action's YAML field, which the parser reads back as
    that action's config (and as no other action)."""
    resource = build_upstream_fault("payments", name="x", **{action.attr: KEYWORDS[action.attr]})
    assert list(resource["spec"]) == ["host", action.name]
    result = load_text(yaml.safe_dump(resource))
    assert not result.issues, [str(i) for i in result.issues]
    (f,) = result.resources
    assert isinstance(f, UpstreamFault)
    assert f.actions == (action.name,)
    assert f.config(action) is not None
    assert all(f.config(other) is None for other in ACTIONS if other is not action)
    assert action.name in KINDS


def test_unknown_action_keyword_is_refused() -> None:
    with pytest.raises(TypeError, match=r"unknown fault action 'slowbody'.*slow_body"):
        build_upstream_fault("payments", name="x", slowbody=10)


def test_actions_are_pure() -> None:
    banned = ("import asyncio", "import socket", "import time", "mitmproxy", "random.random(")
    for source in Path(registry.__file__).parent.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not [b for b in banned if b in text], source.name


@pytest.mark.parametrize(
    "first",
    [
        "chaoskit.faults.actions",
        "chaoskit.faults.actions.delay",
        "chaoskit.faults",
        "chaoskit.faults.plan",
        "chaoskit.config",
        "chaoskit.config.upstream_fault",
        "chaoskit.strategies",
    ],
)
def test_any_module_can_be_imported_first(first: str) -> None:
    """chaoskit.config's parser reads the actions and the actions read YAML with chaoskit.config:
    whichever a program imports first, both load (see chaoskit/faults/__init__.py)."""
    code = f"import {first}\nfrom chaoskit.faults import AttemptPlan, plan_attempt\n"
    code += "from chaoskit.config.upstream_fault import UpstreamFault\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
