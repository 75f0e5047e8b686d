"""An upstream body as an UpstreamFault shapes it, streamed: paced, paused, cut, corrupted.

A :class:`FaultedBody` is the :class:`~chaoskit.proxy.replies.BodyStream` the client's stream
reads (:func:`~chaoskit.proxy.body_relay.relay_body`) in place of the upstream's own body. It
reads a piece from the upstream only when the client took the last one, asks the pure
:class:`~chaoskit.faults.body_shaper.BodyShaper` what becomes of it, and carries that out with
the proxy's clock: ``slowBody``'s pace (Toxiproxy's ``bandwidth``: the body arrives at the rate,
in slices of a twentieth of a second), a pause (the route timeout keeps running: a pause longer
than it ends as ``UT``), a clean end, or a reset (raised as the upstream breaking the body off,
``UC``, so the record and the client see what a real reset gives). A body that arrived whole
with its head streams through it the same way, so a fault acts alike on every body.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from chaoskit.clock import Clock
from chaoskit.faults.body_shaper import BodyShaper, Pause, Step, Stop
from chaoskit.proxy.replies import BodyStream
from chaoskit.proxy.services import Sleep
from chaoskit.proxy.upstream_body import UpstreamBodyError

#: The largest slice sent at once when a body is paced.
MAX_SLICE = 64 * 1024


class FaultedBody:
    """``first`` (what came with the head) then ``inner`` (``None``: the body was whole, with
    ``trailers``), shaped by ``shaper``; ``rate`` bytes per second when paced. ``on_step`` hears
    each pause and stop as it happens (the record's notes)."""

    def __init__(
        self,
        first: bytes,
        inner: BodyStream | None,
        shaper: BodyShaper,
        *,
        rate: int | None,
        clock: Clock,
        sleep: Sleep,
        on_step: Callable[[Pause | Stop], None],
        trailers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._first = first
        self._whole_trailers = trailers
        self._inner = inner
        self._shaper = shaper
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._on_step = on_step
        self.announced = shaper.announced
        self.deadline: float | None = None
        self.on_end: list[Callable[[], None]] = []
        #: what the shaper said, in order (a paced piece's rest as a view)
        self._steps: collections.deque[Step | memoryview] = collections.deque(shaper.start())
        self._upstream_done = False
        #: when pacing (re)started, and the bytes paced since
        self._paced_from: float | None = None
        self._paced = 0
        self._stopped = False

    @property
    def trailers(self) -> tuple[tuple[str, str], ...]:
        """The upstream's trailers, for a body that reached its end (a cut one has none)."""
        if self._stopped:
            return ()
        if self._inner is None:
            return self._whole_trailers
        return tuple(getattr(self._inner, "trailers", ()))

    async def read(self) -> bytes:
        """The next piece for the client, ``b""`` at the end; raises
        :class:`UpstreamBodyError` where the fault resets the body."""
        while True:
            if self._steps:
                step = self._steps.popleft()
                if isinstance(step, (bytes, memoryview)):
                    if step:
                        return await self._paced_piece(step)
                    continue
                self._on_step(step)
                if isinstance(step, Pause):
                    await self._pause(step.seconds)
                    continue
                self._stopped = True
                self._steps.clear()
                self._close_inner()
                if step.reset:
                    raise UpstreamBodyError(
                        "connection termination", "UC", f"UpstreamFault reset after {step.at}"
                    )
                return b""
            if self._upstream_done or self._stopped:
                return b""
            chunk = await self._next_upstream_piece()
            if not chunk:
                self._upstream_done = True
                continue
            self._steps.extend(self._shaper.feed(chunk))

    async def _next_upstream_piece(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        return await self._inner.read() if self._inner is not None else b""

    async def _paced_piece(self, piece: bytes | memoryview) -> bytes:
        rate = self._rate
        if rate is None:
            return bytes(piece)
        size = max(1, min(MAX_SLICE, rate // 20))
        if len(piece) > size:  # the rest waits its turn (a view: no copy of it per slice)
            self._steps.appendleft(memoryview(piece)[size:])
        data = bytes(piece[:size])
        now = self._clock.monotonic()
        if self._paced_from is None:
            self._paced_from = now
        self._paced += len(data)
        wait = self._paced_from + self._paced / rate - now
        if wait > 0:
            await self._sleep(wait)
        return data

    async def _pause(self, seconds: float | None) -> None:
        if seconds is None:
            await asyncio.Event().wait()  # only the route timeout or the client ends it
        else:
            await self._sleep(seconds)
        self._paced_from, self._paced = None, 0  # the pace starts over after a pause

    def _close_inner(self) -> None:
        if self._inner is not None:
            self._inner.close()

    def close(self) -> None:
        """End early or after the end (idempotent): the upstream's body is closed, and what
        waited for the end runs."""
        self._close_inner()
        callbacks, self.on_end = self.on_end, []
        for callback in callbacks:
            callback()
