"""A faulted body streamed (chaoskit/proxy/faulted_body.py): paced, paused, cut and reset with a
fake clock, so every wait is exact and nothing sleeps."""

from __future__ import annotations

import asyncio

import pytest

from chaoskit.faults.actions.pause_body import FaultPauseBody
from chaoskit.faults.actions.reset import FaultReset
from chaoskit.faults.body_point import BodyPoint
from chaoskit.faults.body_shaper import BodyShaper, Pause, Stop
from chaoskit.faults.plan import AttemptPlan
from chaoskit.proxy.faulted_body import FaultedBody
from chaoskit.proxy.upstream_body import UpstreamBodyError
from chaoskit.testing import FakeBody
from chaoskit.testing.clock import FakeClock, FakeSleep


def faulted(
    first: bytes, inner: FakeBody | None, announced: int | None = None, **plan: object
) -> tuple[FaultedBody, FakeSleep, list[Pause | Stop]]:
    clock = FakeClock()
    sleep = FakeSleep(clock, max_step=1e9)
    steps: list[Pause | Stop] = []
    p = AttemptPlan(faults=("f",), **plan)  # type: ignore[arg-type]
    body = FaultedBody(
        first, inner, BodyShaper(p, announced, "text/event-stream"),
        rate=p.slow_body_bps, clock=clock, sleep=sleep, on_step=steps.append,
    )  # fmt: skip
    return body, sleep, steps


async def read_all(body: FaultedBody) -> list[bytes]:
    pieces = []
    while piece := await body.read():
        pieces.append(piece)
    return pieces


def test_a_paced_body_arrives_at_its_rate_in_twentieths_of_a_second() -> None:
    body, sleep, _ = faulted(b"x" * 1000, FakeBody([b"y" * 1000]), slow_body_bps=400)
    pieces = asyncio.run(read_all(body))
    assert b"".join(pieces) == b"x" * 1000 + b"y" * 1000
    assert {len(p) for p in pieces} == {20}  # 400 B/s / 20
    assert sum(sleep.calls) == pytest.approx(2000 / 400)


def test_a_pause_holds_the_body_then_it_goes_on_and_is_heard() -> None:
    pause = FaultPauseBody(BodyPoint("events", 1), 3.0)
    body, sleep, steps = faulted(b"data: 1\n\ndata: 2\n\n", None, pauses=(pause,))
    assert asyncio.run(read_all(body)) == [b"data: 1\n\n", b"data: 2\n\n"]
    assert sleep.calls == [3.0]
    assert steps == [Pause(pause.at, 3.0, 9)]


def test_a_pause_without_end_lasts_until_the_reader_gives_up() -> None:
    body, _, _ = faulted(b"data: 1\n\n", FakeBody(then="wait"),
                         pauses=(FaultPauseBody(BodyPoint("bytes", 0)),))  # fmt: skip

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await body.read()

    asyncio.run(main())


def test_a_clean_cut_closes_the_upstream_and_ends_without_its_trailers() -> None:
    inner = FakeBody([b"data: 2\n\n", b"data: 3\n\n"], then="wait")
    body, _, steps = faulted(b"data: 1\n\n", inner, truncate=(BodyPoint("events", 2),))
    done: list[str] = []
    body.on_end.append(lambda: done.append("end"))
    assert asyncio.run(read_all(body)) == [b"data: 1\n\n", b"data: 2\n\n"]
    assert inner.closed == 1 and body.trailers == ()
    assert steps == [Stop(BodyPoint("events", 2), False, 18)]
    body.close()
    body.close()
    assert done == ["end"]  # once, when the body is let go


def test_a_reset_raises_as_the_upstream_breaking_the_body_off() -> None:
    inner = FakeBody([b"abcdef"])
    body, _, _ = faulted(b"", inner, 6, reset=FaultReset("body", after_bytes=4))

    async def main() -> None:
        assert await body.read() == b"abcd"
        with pytest.raises(UpstreamBodyError) as e:
            await body.read()
        assert (e.value.flag, e.value.reason) == ("UC", "connection termination")
        assert e.value.detail == "UpstreamFault reset after 4 bytes"

    asyncio.run(main())
    assert inner.closed == 1
    assert body.announced == 6  # the client was told the whole length
