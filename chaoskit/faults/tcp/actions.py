"""The table of TCP actions (:data:`TCP_ACTIONS`) that everything reads.

The YAML parser (:mod:`chaoskit.config.upstream_fault`: which fields are actions, ``sequence``
steps, the combination rules), the connection plan (:mod:`.plan`) and docs/configuration.md
(:func:`docs_table`, kept equal by a test) iterate it, as the HTTP actions' table
(:data:`chaoskit.faults.actions.ACTIONS`) is iterated.
"""

from __future__ import annotations

from typing import Any

from chaoskit.faults.tcp import endings, shaping
from chaoskit.faults.tcp.base import TcpAction

#: Every TCP action, in the order they are listed in docs and messages: the shaping actions
#: (they combine), then the endings (at most one applies to a connection).
TCP_ACTIONS: tuple[TcpAction[Any], ...] = (
    shaping.LATENCY,
    shaping.BANDWIDTH,
    shaping.SLICER,
    endings.LIMIT_DATA,
    endings.RESET_PEER,
    endings.TIMEOUT,
)
TCP_ACTION_NAMES = tuple(a.name for a in TCP_ACTIONS)
TCP_BY_NAME: dict[str, TcpAction[Any]] = {a.name: a for a in TCP_ACTIONS}


def docs_table() -> str:
    """The "TCP actions" table of docs/configuration.md (Markdown, one row per action)."""
    rows = [f"| `{a.name}` | {a.doc} |" for a in TCP_ACTIONS]
    return "\n".join(["| Field | Rules and meaning |", "|---|---|", *rows]) + "\n"
