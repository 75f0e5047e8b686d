"""The TCP action table: docs and the UpstreamFault fields stay in step with it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chaoskit.config.upstream_fault import SEQUENCE_STEPS, UpstreamFault
from chaoskit.faults.actions import ACTION_NAMES
from chaoskit.faults.tcp.actions import TCP_ACTION_NAMES, TCP_ACTIONS, TCP_BY_NAME, docs_table

DOCS = Path(__file__).resolve().parents[4] / "docs"


def test_table() -> None:
    assert TCP_ACTION_NAMES == (
        "latency", "bandwidth", "slicer", "limitData", "resetPeer", "timeout",
    )  # fmt: skip
    assert [a.ending for a in TCP_ACTIONS] == [False] * 3 + [True] * 3
    assert {a.name: a for a in TCP_ACTIONS} == TCP_BY_NAME
    assert not set(TCP_ACTION_NAMES) & set(ACTION_NAMES)


def test_upstream_fault_has_one_field_per_tcp_action_and_sequence_steps() -> None:
    fields = {f.name for f in dataclasses.fields(UpstreamFault)}
    assert {a.attr for a in TCP_ACTIONS} <= fields
    assert set(TCP_ACTION_NAMES) <= set(SEQUENCE_STEPS)


def test_configuration_md_has_the_table() -> None:
    assert docs_table() in (DOCS / "configuration.md").read_text(encoding="utf-8")
