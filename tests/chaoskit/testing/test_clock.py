"""The fake sleep for threads: sleepers wake in deadline order, each at its own fake instant."""

from __future__ import annotations

import threading

import pytest

from chaoskit.testing.clock import FakeClock, FakeThreadSleep


def test_sleepers_wake_in_order_at_their_deadlines():
    clock = FakeClock(0.0)
    sleep = FakeThreadSleep(clock, threads=("a", "b"))
    seen: list[tuple[str, float]] = []
    never = threading.Event()

    def ticker(name: str, period: float, n: int) -> None:
        for _ in range(n):
            assert sleep(period, never) is False
            seen.append((name, clock.now))

    threads = [
        threading.Thread(target=ticker, args=("a", 1.0, 3), name="a"),
        threading.Thread(target=ticker, args=("b", 1.5, 2), name="b"),
    ]
    for t in threads:
        t.start()
    sleep.advance(2.0)
    assert seen == [("a", 1.0), ("b", 1.5), ("a", 2.0)] and clock.now == 2.0
    sleep.advance(10.0)
    assert seen[3:] == [("b", 3.0), ("a", 3.0)]  # a tie: b went to sleep first (at 1.5)
    assert clock.now == 12.0
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)


def test_a_set_event_ends_the_sleep_without_moving_time():
    clock = FakeClock(5.0)
    sleep = FakeThreadSleep(clock)
    done = threading.Event()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(sleep(100.0, done)))
    t.start()
    done.set()
    t.join(5)
    assert result == [True] and clock.now == 5.0
    assert sleep(1.0, done) is True and sleep.calls == [100.0, 1.0]


def test_a_stuck_sleep_is_an_error_not_a_hang():
    sleep = FakeThreadSleep(FakeClock(), timeout=0.05)
    with pytest.raises(TimeoutError, match="fake time"):
        sleep(1.0, threading.Event())  # nobody advances the clock
