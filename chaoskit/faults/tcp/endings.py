"""``limitData``, ``resetPeer``, ``timeout``: how a connection ends early (Toxiproxy's
``limit_data``, ``reset_peer`` and ``timeout`` toxics, toxics/*.go).

At most one ending applies to a connection (the first selected one, in configuration order);
the shaping actions still apply until it acts.

- ``limitData: {bytes: N, stream}``: once N bytes of that direction went through, the
  connection is closed cleanly (FIN both ways): the client reads exactly N bytes, then EOF.
- ``resetPeer``: the client's connection is reset (TCP RST: ``SO_LINGER`` 0, so its next read
  fails with "connection reset by peer") and the upstream's closed — ``{}`` as soon as the
  upstream is connected, ``{after: T}`` T later, ``{afterBytes: N, stream}`` once N bytes of
  that direction went through.
- ``timeout``: nothing is relayed any more (bytes from either side are read and dropped, the
  blackhole Toxiproxy's ``timeout`` makes); ``{}`` holds the connection until the client
  closes it, ``{after: T}`` closes it cleanly T after it was opened.
"""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING

from chaoskit.config.fields import Fields
from chaoskit.faults.tcp.base import DEFAULT_STREAM, Stream, TcpAction, parse_stream

if TYPE_CHECKING:
    from chaoskit.faults.tcp.plan import ConnectionDraft


@dataclasses.dataclass(frozen=True, slots=True)
class TcpLimitData:
    bytes: int
    stream: Stream


@dataclasses.dataclass(frozen=True, slots=True)
class TcpResetPeer:
    """Reset at once (both ``None``), ``after`` seconds after connecting, or after
    ``after_bytes`` bytes of ``stream``."""

    after: float | None = None
    after_bytes: int | None = None
    stream: Stream = DEFAULT_STREAM


@dataclasses.dataclass(frozen=True, slots=True)
class TcpTimeout:
    """Stop relaying; close ``after`` seconds after connecting (``None``: hold)."""

    after: float | None = None


def _parse_limit_data(spec: Fields) -> TcpLimitData | None:
    if (f := spec.obj("limitData")) is None:
        return None
    stream = parse_stream(f)
    size = f.int("bytes", required=True, minimum=1)
    f.done()
    return TcpLimitData(size, stream) if size is not None else None


def _fold_limit_data(draft: ConnectionDraft, limit: TcpLimitData, rng: random.Random) -> None:
    for d in draft.directions(limit.stream):
        d.limit_bytes = limit.bytes


def _parse_reset_peer(spec: Fields) -> TcpResetPeer | None:
    if (f := spec.obj("resetPeer")) is None:
        return None
    after = f.duration("after", allow_zero=True)
    after_bytes = f.int("afterBytes", minimum=1)
    stream = parse_stream(f)
    f.done()
    if f.has("after") and f.has("afterBytes"):
        f.error(None, "only one of after, afterBytes may be set")
        return None
    if f.has("stream") and not f.has("afterBytes"):
        f.error("stream", "stream only applies to afterBytes (the bytes counted)")
        return None
    if (f.has("after") and after is None) or (f.has("afterBytes") and after_bytes is None):
        return None
    return TcpResetPeer(after, after_bytes, stream)


def _fold_reset_peer(draft: ConnectionDraft, reset: TcpResetPeer, rng: random.Random) -> None:
    if reset.after_bytes is not None:
        for d in draft.directions(reset.stream):
            d.reset_after_bytes = reset.after_bytes
    else:
        draft.reset_after = reset.after or 0.0


def _parse_timeout(spec: Fields) -> TcpTimeout | None:
    if (f := spec.obj("timeout")) is None:
        return None
    after = f.duration("after")
    f.done()
    if f.has("after") and after is None:
        return None
    return TcpTimeout(after)


def _fold_timeout(draft: ConnectionDraft, timeout: TcpTimeout, rng: random.Random) -> None:
    draft.blackhole = True
    draft.close_after = timeout.after


LIMIT_DATA: TcpAction[TcpLimitData] = TcpAction(
    name="limitData",
    attr="limit_data",
    ending=True,
    parse=_parse_limit_data,
    fold=_fold_limit_data,
    doc="`{bytes: N ≥ 1, stream}`: after N bytes of that direction the connection closes cleanly.",
)
RESET_PEER: TcpAction[TcpResetPeer] = TcpAction(
    name="resetPeer",
    attr="reset_peer",
    ending=True,
    parse=_parse_reset_peer,
    fold=_fold_reset_peer,
    doc=(
        "`{}` (at once), `{after: T}` or `{afterBytes: N ≥ 1, stream}`: the client's "
        "connection is reset (TCP RST)."
    ),
)
TIMEOUT: TcpAction[TcpTimeout] = TcpAction(
    name="timeout",
    attr="timeout",
    ending=True,
    parse=_parse_timeout,
    fold=_fold_timeout,
    doc=(
        "`{}` or `{after: T}`: nothing is relayed any more; the connection is held until the "
        "client closes it, or closed T after it opened."
    ),
)
