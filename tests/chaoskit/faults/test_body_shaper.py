"""What the client gets of a faulted body, piece by piece (chaoskit/faults/body_shaper.py): cuts,
pauses and corruption at exact places, and the same bytes however the upstream split its body."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from chaoskit.faults.actions.corrupt_body import corrupt
from chaoskit.faults.actions.pause_body import FaultPauseBody
from chaoskit.faults.actions.reset import FaultReset
from chaoskit.faults.body_point import BodyPoint
from chaoskit.faults.body_shaper import BodyShaper, Pause, Step, Stop
from chaoskit.faults.plan import AttemptPlan

SSE = "text/event-stream"
EVENTS = b"data: 1\n\ndata: 2\n\ndata: 3\n\n"  # events end at 9, 18, 27


def plan(**fields: object) -> AttemptPlan:
    return AttemptPlan(faults=("UpstreamFault/default/f:x",), **fields)  # type: ignore[arg-type]


def run(shaper: BodyShaper, *pieces: bytes) -> list[Step]:
    steps = shaper.start()
    for piece in pieces:
        if shaper.stopped:
            break
        steps += shaper.feed(piece)
    return steps


def data(steps: list[Step]) -> bytes:
    return b"".join(s for s in steps if isinstance(s, bytes))


def test_a_byte_cut_ends_the_body_cleanly_and_shortens_the_announced_length() -> None:
    shaper = BodyShaper(plan(truncate=(BodyPoint("bytes", 5),)), 12, "")
    assert shaper.announced == 5
    steps = run(shaper, b"abc", b"defg", b"hij")
    assert steps == [b"abc", b"de", Stop(BodyPoint("bytes", 5), False, 5)]


def test_an_event_cut_ends_after_that_event_and_drops_the_announced_length() -> None:
    shaper = BodyShaper(plan(truncate=(BodyPoint("events", 2),)), len(EVENTS), SSE)
    assert shaper.announced is None  # where 2 events end is not known from the head
    steps = run(shaper, EVENTS[:12], EVENTS[12:])
    assert data(steps) == b"data: 1\n\ndata: 2\n\n"
    assert steps[-1] == Stop(BodyPoint("events", 2), False, 18)


def test_the_first_cut_reached_wins() -> None:
    cuts = (BodyPoint("events", 2), BodyPoint("bytes", 12))
    assert data(run(BodyShaper(plan(truncate=cuts), None, SSE), EVENTS)) == EVENTS[:12]
    cuts = (BodyPoint("events", 1), BodyPoint("bytes", 12))
    assert data(run(BodyShaper(plan(truncate=cuts), None, SSE), EVENTS)) == EVENTS[:9]


def test_a_reset_after_events_keeps_the_announced_length() -> None:
    shaper = BodyShaper(plan(reset=FaultReset("body", after_events=1)), len(EVENTS), SSE)
    assert shaper.announced == len(EVENTS)  # the client is told the whole, then cut short
    assert run(shaper, EVENTS) == [b"data: 1\n\n", Stop(BodyPoint("events", 1), True, 9)]


def test_a_reset_after_headers_comes_before_any_byte() -> None:
    shaper = BodyShaper(plan(reset=FaultReset("headers")), 3, "")
    assert shaper.start() == [Stop(BodyPoint("bytes", 0), True, 0)]
    assert shaper.stopped


def test_pauses_come_at_their_points_and_the_body_goes_on() -> None:
    pauses = (
        FaultPauseBody(BodyPoint("events", 1), 2.0),
        FaultPauseBody(BodyPoint("bytes", 0), 0.5),
        FaultPauseBody(BodyPoint("bytes", 20)),
    )
    steps = run(BodyShaper(plan(pauses=pauses), None, SSE), EVENTS)
    assert steps == [
        Pause(BodyPoint("bytes", 0), 0.5, 0),
        b"data: 1\n\n",
        Pause(BodyPoint("events", 1), 2.0, 9),
        b"data: 2\n\nda",
        Pause(BodyPoint("bytes", 20), None, 20),
        b"ta: 3\n\n",
    ]


def test_at_one_place_a_pause_comes_before_a_reset_and_a_reset_before_a_clean_end() -> None:
    at = BodyPoint("bytes", 4)
    shaper = BodyShaper(
        plan(
            truncate=(at,), reset=FaultReset("body", after_bytes=4),
            pauses=(FaultPauseBody(at, 1.0),),
        ),
        None, "",
    )  # fmt: skip
    assert run(shaper, b"abcdefgh") == [b"abcd", Pause(at, 1.0, 4), Stop(at, True, 4)]


def test_a_body_shorter_than_a_point_ends_as_the_upstream_ended_it() -> None:
    shaper = BodyShaper(plan(truncate=(BodyPoint("events", 5),)), None, SSE)
    assert run(shaper, EVENTS) == [EVENTS] and not shaper.stopped


def test_a_cut_at_the_end_of_a_piece_comes_with_that_piece() -> None:
    shaper = BodyShaper(plan(reset=FaultReset("body", after_bytes=3)), None, "")
    assert shaper.feed(b"abc") == [b"abc", Stop(BodyPoint("bytes", 3), True, 3)]


def test_corruption_of_an_announced_body_flips_what_the_whole_body_would() -> None:
    body = bytes(range(200))
    p = plan(corrupt_bytes=5, corrupt_seed=42, truncate=(BodyPoint("bytes", 150),))
    out = data(run(BodyShaper(p, len(body), ""), body[:7], body[7:100], body[100:]))
    assert out == corrupt(body[:150], 5, random.Random(42))


def test_corruption_of_a_body_without_a_length_is_within_its_first_piece() -> None:
    p = plan(corrupt_bytes=3, corrupt_seed=7)
    out = data(run(BodyShaper(p, None, ""), b"a" * 10, b"b" * 10))
    assert out[10:] == b"b" * 10
    assert sum(byte != ord("a") for byte in out[:10]) == 3


PLANS = [
    plan(truncate=(BodyPoint("events", 2),), corrupt_bytes=3, corrupt_seed=1),
    plan(reset=FaultReset("body", after_bytes=13), corrupt_bytes=2, corrupt_seed=2),
    plan(
        pauses=(FaultPauseBody(BodyPoint("events", 1), 1.0), FaultPauseBody(BodyPoint("bytes", 3))),
        truncate=(BodyPoint("bytes", 25),),
    ),
    plan(reset=FaultReset("body", after_events=3), corrupt_bytes=30, corrupt_seed=3),
]


@given(which=st.integers(0, len(PLANS) - 1), cuts=st.lists(st.integers(1, 26), max_size=6))
def test_the_client_gets_the_same_whatever_the_pieces(which: int, cuts: list[int]) -> None:
    """The bytes, the pauses and the stop do not depend on where the upstream split its body
    (for an announced body; corruption of one without a length follows its first piece)."""
    bounds = [0, *sorted(set(cuts)), len(EVENTS)]
    pieces = [EVENTS[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    whole = run(BodyShaper(PLANS[which], len(EVENTS), SSE), EVENTS)
    split = run(BodyShaper(PLANS[which], len(EVENTS), SSE), *pieces)
    assert data(split) == data(whole)
    assert [s for s in split if not isinstance(s, bytes)] == [
        s for s in whole if not isinstance(s, bytes)
    ]
