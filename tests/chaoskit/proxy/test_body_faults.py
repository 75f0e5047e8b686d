"""Body actions on a whole body (chaoskit/proxy/body_faults.py), as where bodies are buffered:
the same bytes the stream would give, after the time its pace and pauses add up to."""

from __future__ import annotations

import dataclasses

import pytest

from chaoskit.faults.actions.pause_body import FaultPauseBody
from chaoskit.faults.actions.reset import FaultReset
from chaoskit.faults.body_point import BodyPoint
from chaoskit.faults.plan import AttemptPlan
from chaoskit.proxy.body_faults import shape_whole
from chaoskit.proxy.upstream import UpstreamResponse

EVENTS = b"data: 1\n\ndata: 2\n\ndata: 3\n\n"
SSE = UpstreamResponse(200, "OK", (("Content-Type", "text/event-stream"),), EVENTS)


def plan(**fields: object) -> AttemptPlan:
    return AttemptPlan(faults=("f",), **fields)  # type: ignore[arg-type]


def test_a_reset_keeps_what_came_before_and_the_whole_length() -> None:
    shaped = shape_whole(SSE, plan(reset=FaultReset("body", after_events=1)))
    assert (shaped.resp.body, shaped.reset, shaped.length) == (b"data: 1\n\n", True, 27)
    assert shaped.notes == ()  # the reset is told by the cut itself (flag UC, its note)


def test_pauses_and_pace_add_up_to_the_wait() -> None:
    pauses = (
        FaultPauseBody(BodyPoint("events", 1), 1.0),
        FaultPauseBody(BodyPoint("bytes", 0), 2.0),
    )
    shaped = shape_whole(SSE, plan(pauses=pauses, slow_body_bps=9))
    assert shaped.resp.body == EVENTS and not shaped.reset
    assert shaped.wait == pytest.approx(3.0 + 27 / 9)
    assert shaped.notes == (
        "UpstreamFault paused the body for 2s after 0 bytes (0 bytes sent)",
        "UpstreamFault paused the body for 1s after 1 SSE event (9 bytes sent)",
    )


def test_a_pause_without_end_is_a_wait_without_end() -> None:
    shaped = shape_whole(SSE, plan(pauses=(FaultPauseBody(BodyPoint("events", 2)),)))
    assert shaped.wait is None


def test_an_event_cut_is_a_shorter_whole_body() -> None:
    shaped = shape_whole(SSE, plan(truncate=(BodyPoint("events", 2),)))
    assert (shaped.resp.body, shaped.length, shaped.reset) == (EVENTS[:18], 18, False)
    assert shaped.notes == (
        "UpstreamFault ended the body cleanly after 2 SSE events (18 bytes sent)",
    )


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        ({"truncate": (BodyPoint("events", 1),)}, False),
        ({"reset": FaultReset("body", after_events=1)}, False),
        ({"pauses": (FaultPauseBody(BodyPoint("events", 1), 1.0),)}, True),
    ],
    ids=["truncate", "reset", "pause"],
)
def test_only_a_body_that_reaches_its_end_keeps_its_trailers(fields, kept) -> None:
    """A gRPC answer cut short never gets its ``grpc-status`` (the client sees the cut), as a
    streamed one (FaultedBody.trailers)."""
    grpc = dataclasses.replace(SSE, trailers=(("grpc-status", "0"),))
    shaped = shape_whole(grpc, plan(**fields))
    assert shaped.resp.trailers == (grpc.trailers if kept else ())
