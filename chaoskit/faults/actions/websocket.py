"""``webSocket``: a WebSocket through the upstream misbehaves after its handshake.

The handshake itself is an upstream attempt like any other, so the other actions already act
on it: ``abort`` refuses the upgrade with its status, ``delay`` delays the handshake, ``reset:
{after: connect}`` is a connect failure. This action acts on the socket the handshake opened
(beyond Istio; Toxiproxy's ``latency`` and ``limit_data``/``timeout`` toxics, per message)::

    webSocket:
      messageDelay: 200ms          # each message is held this long before it is relayed
      close:                       # end the socket, after N messages and/or after a time
        afterMessages: 3           # N messages relayed (both directions); the next one is not
        after: 5s                  # from the 101 response on
        code: 1011                 # a clean close frame with this code to both sides; without
                                   # it the connection is dropped (the client sees 1006)

A fault with ``webSocket`` targets WebSocket upgrades only: plain requests to the same host do
not count towards its ``firstN``/``nth``/``sequence`` and are never touched by it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chaoskit.config.fields import Fields
from chaoskit.faults.actions.base import Action, Examples, Stage

if TYPE_CHECKING:
    from chaoskit.config.upstream_fault import UpstreamFault
    from chaoskit.faults.plan import PlanDraft

NAME = "webSocket"
#: Close codes an endpoint may send (RFC 6455 §7.4.1-7.4.2): 1004 is reserved, 1005, 1006 and
#: 1015 must never be sent in a close frame, 1016-2999 are for future protocol versions.
_SENDABLE_CODES = (range(1000, 1004), range(1007, 1015), range(3000, 5000))


@dataclasses.dataclass(frozen=True, slots=True)
class SocketClose:
    """When the socket ends, and how: ``code`` ``None`` drops the connection (no close frame)."""

    after_messages: int | None = None
    after: float | None = None
    code: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FaultWebSocket:
    #: seconds each message is held before it is relayed
    message_delay: float = 0.0
    close: SocketClose | None = None

    def then(self, later: FaultWebSocket) -> FaultWebSocket:
        """Two faults on one socket, in config order: the delays add up, the first close wins."""
        return FaultWebSocket(self.message_delay + later.message_delay, self.close or later.close)


def is_websocket_upgrade(headers: Mapping[str, str]) -> bool:
    """A WebSocket handshake (RFC 6455 §4.1): ``Upgrade: websocket`` with ``Connection:
    upgrade``; ``headers`` lower-case names, repeated ones joined with commas."""
    upgrade = {t.strip().lower() for t in headers.get("upgrade", "").split(",")}
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    return "websocket" in upgrade and "upgrade" in connection


def socket_faults(names: Sequence[str], faults: Sequence[UpstreamFault]) -> FaultWebSocket | None:
    """The ``webSocket`` actions applied to a handshake attempt, by the names its record carries
    (``UpstreamFault/ns/name:webSocket``), combined in order; ``None`` when there are none."""
    by_ref = {f.ref: f for f in faults}
    combined: FaultWebSocket | None = None
    for name in names:
        ref, _, action = name.rpartition(":")
        fault = by_ref.get(ref)
        if action != NAME or fault is None or fault.websocket is None:
            continue
        combined = fault.websocket if combined is None else combined.then(fault.websocket)
    return combined


def _parse_close(f: Fields) -> SocketClose | None:
    after_messages = f.int("afterMessages", minimum=0)
    after = f.duration("after")
    code = f.int("code", minimum=None)
    f.done()
    if code is not None and not any(code in r for r in _SENDABLE_CODES):
        f.error(
            "code",
            f"{code} is not a close code an endpoint may send: use 1000-1003, 1007-1014 or "
            "3000-4999 (leave code out to drop the connection, which the client sees as 1006)",
        )
        return None
    if not f.has("afterMessages") and not f.has("after"):
        f.error(None, "close needs afterMessages and/or after")
        return None
    if (after_messages is None and f.has("afterMessages")) or (after is None and f.has("after")):
        return None
    return SocketClose(after_messages, after, code)


def parse(spec: Fields) -> FaultWebSocket | None:
    if (f := spec.obj(NAME)) is None:
        return None
    delay = f.duration("messageDelay")
    close = _parse_close(c) if (c := f.obj("close")) is not None else None
    f.done()
    if not f.has("messageDelay") and not f.has("close"):
        f.error(None, "webSocket needs messageDelay and/or close")
        return None
    if (delay is None and f.has("messageDelay")) or (close is None and f.has("close")):
        return None
    return FaultWebSocket(delay or 0.0, close)


def fold(plan: PlanDraft, ws: FaultWebSocket, rng: random.Random) -> None:
    """Nothing changes in the handshake attempt itself: the proxy reads the socket's faults
    from the attempt's fault names once the socket is open (:func:`socket_faults`)."""


def from_keyword(value: Any) -> dict[str, Any]:
    """A dict as it is (``{"messageDelay": "100ms"}``); anything else is refused."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(
        f"websocket must be a dict such as {{'close': {{'afterMessages': 2}}}}, not {value!r}"
    )


ACTION: Action[FaultWebSocket] = Action(
    name=NAME,
    attr="websocket",
    stage=Stage.SOCKET,
    parse=parse,
    fold=fold,
    doc=(
        "`{messageDelay: D, close: {afterMessages: N ≥ 0, after: D, code: C}}` (WebSocket "
        "upgrades only): each message held D before it is relayed; the socket closed after N "
        "messages or D, with close code C, or dropped (the client sees 1006) without one."
    ),
    from_keyword=from_keyword,
    examples=lambda bounds: Examples((1, 0), lambda n: {"close": {"afterMessages": n}}),
    mildness=65,
    conflicts=(
        ("abort", "an aborted handshake opens no socket"),
        ("reset", "a reset handshake opens no socket"),
        ("hang", "a hung handshake opens no socket"),
    ),
)
