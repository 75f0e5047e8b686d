"""What the client gets of an upstream body an UpstreamFault acts on, piece by piece.

Pure: the proxy feeds each piece of the upstream's body as it arrives
(:class:`~chaoskit.proxy.faulted_body.FaultedBody`) and carries out the steps it gets back —
bytes to send, a :class:`Pause`, a :class:`Stop` — with its own clock; the pace of ``slowBody``
is timing only and stays with the proxy. Nothing is buffered: a piece is cut where a point
falls in it, so a fault that acts on a stream keeps it streaming, and a 1 GB body with a pause
in it costs what the piece in flight costs.

Points (:class:`~chaoskit.faults.body_point.BodyPoint`) are counted on the body as the client
gets it; several at one place act in this order: pauses, a reset, a clean end. A body that ends
before a point never reaches it: the body ends as the upstream ended it.
"""

from __future__ import annotations

import bisect
import dataclasses
import random

from chaoskit.faults.actions.corrupt_body import flip_positions
from chaoskit.faults.body_events import EventCounter, counter_for
from chaoskit.faults.body_point import BodyPoint
from chaoskit.faults.plan import AttemptPlan

__all__ = ["BodyShaper", "Pause", "Step", "Stop"]


@dataclasses.dataclass(frozen=True, slots=True)
class Pause:
    """Send nothing for ``seconds`` (``None``: until a timeout or the client ends the body)."""

    at: BodyPoint
    seconds: float | None
    #: body bytes sent before it
    sent: int


@dataclasses.dataclass(frozen=True, slots=True)
class Stop:
    """The body ends here: reset (the client's stream is cut) or cleanly."""

    at: BodyPoint
    reset: bool
    sent: int


Step = bytes | Pause | Stop


@dataclasses.dataclass(frozen=True, slots=True)
class _Mark:
    at: BodyPoint
    #: at one place: pauses (0), then a reset (1), then a clean end (2)
    order: int
    seconds: float | None = None


class BodyShaper:
    """One attempt's body: call :meth:`start` once, then :meth:`feed` each upstream piece until
    the upstream body ends or a :class:`Stop` comes back (feed nothing after it)."""

    def __init__(self, plan: AttemptPlan, announced: int | None, content_type: str) -> None:
        marks = [_Mark(p.at, 0, p.seconds) for p in plan.pauses]
        reset = plan.reset.point if plan.reset is not None else None
        if reset is not None:
            marks.append(_Mark(reset, 1))
        marks += [_Mark(at, 2) for at in plan.truncate]
        self._marks = sorted(marks, key=lambda m: (m.at.count, m.order))
        length = announced
        if length is not None:
            for at in plan.truncate:
                if at.unit == "bytes":
                    length = min(length, at.count)
        cut_at_event = any(at.unit == "events" for at in plan.truncate)
        #: what the client is told of the body's length (``None``: not known in advance — where
        #: N events end is not known from the head)
        self.announced = None if cut_at_event else length
        uses_events = any(m.at.unit == "events" for m in marks)
        self.counter: EventCounter | None = counter_for(content_type) if uses_events else None
        self._corrupt = plan.corrupt_bytes
        self._rng = random.Random(plan.corrupt_seed)
        #: sorted positions to flip; ``None`` until known (a body without a length: its
        #: first piece); drawn over the whole length, so where the upstream split its body or
        #: where an event cut falls does not move them
        self._flips: list[int] | None = None
        if self._corrupt and length is not None:
            self._flips = sorted(flip_positions(length, self._corrupt, self._rng))
        #: body bytes handed out, whole events seen
        self.sent = 0
        self.events = 0
        self.stopped = False

    def start(self) -> list[Step]:
        """What happens before the first byte (points at 0)."""
        return self._steps(b"", [])

    def feed(self, data: bytes) -> list[Step]:
        """The steps for the next upstream piece ``data``."""
        if self.stopped or not data:
            return []
        ends: list[int] = []
        if self.counter is not None:
            wanted = max(
                (m.at.count - self.events for m in self._marks if m.at.unit == "events"),
                default=0,
            )
            if wanted > 0:
                ends = self.counter.scan(data, wanted)
        return self._steps(data, ends)

    def _steps(self, data: bytes, ends: list[int]) -> list[Step]:
        due: list[tuple[int, int, _Mark]] = []
        for mark in self._marks:
            if mark.at.unit == "bytes":
                offset = mark.at.count - self.sent
                if offset <= len(data):
                    due.append((offset, mark.order, mark))
            elif (k := mark.at.count - self.events) == 0:
                due.append((0, mark.order, mark))
            elif k <= len(ends):
                due.append((ends[k - 1], mark.order, mark))
        due.sort(key=lambda d: (d[0], d[1]))
        steps: list[Step] = []
        pos = 0
        for offset, _, mark in due:
            self._marks.remove(mark)
            if offset > pos:
                steps.append(self._emit(data[pos:offset]))
                pos = offset
            if mark.order == 0:
                steps.append(Pause(mark.at, mark.seconds, self.sent))
            else:
                self.stopped = True
                steps.append(Stop(mark.at, mark.order == 1, self.sent))
                return steps
        if pos < len(data):
            steps.append(self._emit(data[pos:]))
        # (a scan that stopped at its limit found the last event any mark waits for)
        self.events += len(ends)
        return steps

    def _emit(self, piece: bytes) -> bytes:
        start = self.sent
        self.sent += len(piece)
        if not self._corrupt:
            return piece
        if self._flips is None:  # no length announced: among the first piece's bytes
            self._flips = sorted(
                start + p for p in flip_positions(len(piece), self._corrupt, self._rng)
            )
        flips = self._flips
        lo = bisect.bisect_left(flips, start)
        hi = bisect.bisect_left(flips, self.sent)
        if lo == hi:
            return piece
        out = bytearray(piece)
        for position in flips[lo:hi]:
            out[position - start] ^= 0xFF
        return bytes(out)
