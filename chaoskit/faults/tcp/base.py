"""What a TCP action is: one :class:`TcpAction` value per action, listed in
:data:`chaoskit.faults.tcp.actions.TCP_ACTIONS`.

Each action is described once (in :mod:`.shaping` or :mod:`.endings`): its YAML name, how its
mapping is read, how it folds into the plan of one connection, and its row of the docs table.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from chaoskit.config.fields import Fields

if TYPE_CHECKING:
    from chaoskit.faults.tcp.plan import ConnectionDraft

C = TypeVar("C")

#: Which bytes a per-direction action acts on, in Toxiproxy's words: ``downstream`` is what the
#: upstream sends to the client, ``upstream`` what the client sends to the upstream.
Stream = Literal["downstream", "upstream", "both"]
STREAMS: tuple[Stream, ...] = ("downstream", "upstream", "both")
#: Toxiproxy's default stream for a toxic.
DEFAULT_STREAM: Stream = "downstream"


@dataclasses.dataclass(frozen=True, slots=True)
class TcpAction(Generic[C]):
    """One TCP action; ``C`` is its frozen config type."""

    #: The YAML field under ``spec``, also what a ``sequence`` step and a record name.
    name: str
    #: The :class:`~chaoskit.config.upstream_fault.UpstreamFault` attribute holding the config.
    attr: str
    #: Ends the connection early (at most one per connection; the first selected one wins).
    ending: bool
    #: Reads the action from the fault's ``spec``: its config, or ``None`` (problems reported).
    parse: Callable[[Fields], C | None]
    #: Folds a selected action into the connection's plan, drawing from the fault's stream.
    fold: Callable[[ConnectionDraft, C, random.Random], None]
    #: The "Rules and meaning" cell of its row in docs/configuration.md.
    doc: str


def parse_stream(f: Fields) -> Stream:
    """The ``stream`` field (default :data:`DEFAULT_STREAM`); a wrong one is reported."""
    value = f.enum("stream", STREAMS)
    for stream in STREAMS:
        if value == stream:
            return stream
    return DEFAULT_STREAM
