"""A fake clock and sleep for socket-free tests of anything that takes a
:class:`~chaoskit.clock.Clock` and an injected ``sleep``: the request path
(:class:`~chaoskit.proxy.pipeline.Pipeline`), the experiment runner.

Time moves only when code under test sleeps (or a test calls :meth:`FakeClock.advance`), so a
test of a 10 s UpstreamFault delay or of a back-off schedule runs in microseconds and asserts
exact durations. :class:`FakeSleep` is for asyncio code; :class:`FakeThreadSleep` for code that
sleeps in threads with ``event.wait(seconds)`` (the experiment runner).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import threading
import time
from collections.abc import Callable

#: Wall-clock seconds at fake monotonic 0 (any fixed instant: records carry both clocks).
WALL_EPOCH = 1_700_000_000.0


class FakeClock:
    """Satisfies :class:`chaoskit.clock.Clock`; starts at ``start`` seconds."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL_EPOCH + self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self.now += seconds


class FakeSleep:
    """An injectable ``sleep`` that advances the fake clock instead of waiting.

    Every call is kept in :attr:`calls`. A sleep of ``block_from`` seconds or more never ends
    by itself — only a cancellation ends it, as with a route timeout cutting an UpstreamFault
    delay — and :attr:`entered` is set on the first call so a test can act while code is
    asleep. While :attr:`gate` is cleared, every sleep waits at it after advancing the clock
    (a test holds a back-off open that way). ``max_step`` caps how far one call advances the
    clock, so a blocked long sleep does not jump past deadlines the test still wants to see.
    """

    def __init__(
        self, clock: FakeClock, *, block_from: float = float("inf"), max_step: float = 0.5
    ) -> None:
        self.clock = clock
        self.block_from = block_from
        self.max_step = max_step
        self.calls: list[float] = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.entered.set()
        self.clock.advance(min(max(seconds, 0.0), self.max_step))
        if seconds >= self.block_from:
            await asyncio.Event().wait()
        await self.gate.wait()


@dataclasses.dataclass(eq=False)
class _Sleeper:
    deadline: float
    ticket: int
    thread: threading.Thread
    woken: bool = False


class FakeThreadSleep:
    """An injectable interruptible sleep (``sleep(seconds, event) -> bool``, the contract of
    ``event.wait(seconds)``) for threaded code on a :class:`FakeClock`.

    A call blocks until the fake clock reaches its deadline (``False``) or ``event`` is set
    (``True``). Only :meth:`advance` moves time, from the test's own thread (or a fake upstream
    called by the code under test): it steps the clock to each due sleeper's deadline in turn
    and lets that sleeper's thread run until it sleeps again or ends before stepping on — so
    what a woken thread does happens at exactly the fake instant it asked for, and before
    :meth:`advance` returns. Threads named in ``threads`` are also waited for before the first
    step (until each one alive is asleep), so a thread just started cannot miss its deadline.

    Real time is only spent polling (``event.set()`` does not notify us; a thread that ends
    neither), and every wait gives up after ``timeout`` real seconds with :class:`TimeoutError`.
    """

    def __init__(
        self, clock: FakeClock, *, threads: tuple[str, ...] = (), timeout: float = 10.0
    ) -> None:
        self.clock = clock
        self.threads = threads
        self.timeout = timeout
        self.calls: list[float] = []
        self._cond = threading.Condition()
        self._sleepers: dict[int, _Sleeper] = {}
        self._tickets = itertools.count()

    def __call__(self, seconds: float, event: threading.Event) -> bool:
        with self._cond:
            self.calls.append(seconds)
            if event.is_set():
                return True
            me = _Sleeper(
                self.clock.now + max(seconds, 0.0), next(self._tickets), threading.current_thread()
            )
            self._sleepers[me.ticket] = me
            self._cond.notify_all()
            try:
                self._wait(lambda: me.woken or event.is_set(), "a sleep to end")
                return event.is_set()
            finally:
                del self._sleepers[me.ticket]
                self._cond.notify_all()

    @property
    def sleeping(self) -> int:
        """How many threads are asleep now."""
        with self._cond:
            return sum(not s.woken for s in self._sleepers.values())

    def advance(self, seconds: float) -> None:
        """Move the fake clock ``seconds`` on, waking every sleeper due on the way in order."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        with self._cond:
            target = self.clock.now + seconds
            self._wait(self._named_asleep, f"threads {self.threads} to sleep")
            while True:
                due = [s for s in self._sleepers.values() if not s.woken and s.deadline <= target]
                if not due:
                    break
                first = min(due, key=lambda s: (s.deadline, s.ticket))
                self.clock.advance(max(0.0, first.deadline - self.clock.now))
                first.woken = True
                self._cond.notify_all()
                self._wait(
                    functools.partial(self._back, first), f"{first.thread.name} to sleep again"
                )
            self.clock.advance(target - self.clock.now)

    def _back(self, woken: _Sleeper) -> bool:
        if not woken.thread.is_alive():
            return True
        return any(
            s.thread is woken.thread and s.ticket > woken.ticket for s in self._sleepers.values()
        )

    def _named_asleep(self) -> bool:
        asleep = {s.thread for s in self._sleepers.values() if not s.woken}
        return all(
            t in asleep for t in threading.enumerate() if t.name in self.threads and t.is_alive()
        )

    def _wait(self, done: Callable[[], bool], what: str) -> None:
        """Wait (holding the condition between polls) until ``done()``, at most ``timeout``."""
        end = time.monotonic() + self.timeout
        while not done():
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"fake time: waited {self.timeout:g}s (real) for {what}")
            self._cond.wait(min(left, 0.002))
