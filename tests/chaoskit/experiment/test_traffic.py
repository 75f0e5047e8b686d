"""The traffic driver on a fake clock, without sockets: pacing, deadlines, stop, ids."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping

import pytest

from chaoskit.config.experiment import Target, Traffic
from chaoskit.experiment.traffic import Driver, Endpoint
from chaoskit.testing.clock import FakeClock


class FakeNetwork:
    """Answers every request ``latency`` fake seconds later; the driver sleeps on the clock."""

    def __init__(self, clock: FakeClock, latency: float, status: int = 200) -> None:
        self.clock = clock
        self.latency = latency
        self.status = status
        self.sent: list[tuple[float, str, dict[str, str]]] = []
        self.sleeps: list[float] = []

    def send(self, endpoint: Endpoint, headers: Mapping[str, str]) -> tuple[int, str]:
        self.sent.append((self.clock.now, endpoint.url, dict(headers)))
        self.clock.advance(self.latency)
        return self.status, ""

    def sleep(self, seconds: float, event: threading.Event) -> bool:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        return event.is_set()


def driver(net: FakeNetwork, seed: int = 1, **traffic: object) -> Driver:
    targets = (Target("http://web/", "web", headers={"end-user": "jason"}),)
    return Driver(
        Traffic(targets, **traffic),  # type: ignore[arg-type]
        lambda t: Endpoint(t, t.url, None),
        random.Random(seed),
        clock=net.clock,
        sleep=net.sleep,
        send=net.send,
    )


def test_a_rate_is_an_open_loop_schedule():
    net = FakeNetwork(FakeClock(100.0), latency=0.1)
    samples = driver(net, requests=4, rate=2.0).run(90.0, "method", threading.Event())
    assert [s.t for s in samples] == pytest.approx([10.0, 10.5, 11.0, 11.5])  # since t0 = 90
    assert [s.latency for s in samples] == pytest.approx([0.1] * 4)
    assert net.sleeps == pytest.approx([0.4] * 3)  # to each start, not a fixed gap after answers
    assert all(s.status == 200 and s.phase == "method" for s in samples)


def test_a_slow_answer_does_not_push_the_schedule_back():
    net = FakeNetwork(FakeClock(0.0), latency=1.2)
    samples = driver(net, requests=3, rate=1.0).run(0.0, "method", threading.Event())
    assert [s.t for s in samples] == pytest.approx([0.0, 1.2, 2.4])  # late: sent at once
    assert net.sleeps == []


def test_no_request_starts_after_the_duration():
    net = FakeNetwork(FakeClock(0.0), latency=0.1)
    samples = driver(net, duration=1.2, rate=2.0).run(0.0, "during", threading.Event())
    assert [s.t for s in samples] == pytest.approx([0.0, 0.5, 1.0])
    closed_loop = FakeNetwork(FakeClock(0.0), latency=0.25)
    samples = driver(closed_loop, duration=1.0).run(0.0, "during", threading.Event())
    assert [s.t for s in samples] == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_a_stop_ends_the_wait_for_the_next_start():
    net = FakeNetwork(FakeClock(0.0), latency=0.1)
    stop = threading.Event()

    def sleep(seconds: float, event: threading.Event) -> bool:
        stop.set()  # Ctrl-C while waiting for request 1's start
        return net.sleep(seconds, event)

    d = driver(net, requests=5, rate=1.0)
    d.sleep = sleep
    assert len(d.run(0.0, "method", stop)) == 1


def test_ids_and_headers_are_the_seeds():
    net = FakeNetwork(FakeClock(0.0), latency=0.01)
    a = driver(net, seed=7, requests=3).run(0.0, "before", threading.Event())
    b = driver(net, seed=7, requests=3).run(0.0, "before", threading.Event())
    assert [s.request_id for s in a] == [s.request_id for s in b]
    assert len({s.request_id for s in a}) == 3
    headers = [h for _, _, h in net.sent[:3]]
    assert [h["x-request-id"] for h in headers] == [s.request_id for s in a]
    assert all(h["end-user"] == "jason" for h in headers)


def test_the_fault_flag_is_read_when_a_request_starts():
    net = FakeNetwork(FakeClock(0.0), latency=0.5)
    on = iter([True, False, True])
    samples = driver(net, requests=3).run(0.0, "method", threading.Event(), lambda: next(on))
    assert [s.faulted for s in samples] == [True, False, True]
