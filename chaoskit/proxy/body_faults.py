"""Carrying out an attempt plan's body actions on the upstream's answer.

Where mitmproxy streams replies (:attr:`~chaoskit.proxy.services.Services.streaming`), the body
goes on streaming through a :class:`~chaoskit.proxy.faulted_body.FaultedBody`, whole bodies
included, so ``slowBody`` trickles and a pause is a pause the client sees. Where it does not,
the whole body is shaped at once by the same :class:`~chaoskit.faults.body_shaper.BodyShaper`:
the client gets the same bytes, after the time the pace and the pauses add up to (a pause
without end: never).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from chaoskit.faults.body_shaper import BodyShaper, Pause, Stop
from chaoskit.faults.plan import AttemptPlan
from chaoskit.proxy.faulted_body import FaultedBody
from chaoskit.proxy.services import Services
from chaoskit.proxy.upstream import UpstreamResponse


def content_type(resp: UpstreamResponse) -> str:
    return next((v for k, v in resp.headers if k.lower() == "content-type"), "")


def describe(step: Pause | Stop, noun: str) -> str:
    """The record's note for a pause or a clean end, as it happened."""
    count = step.at.count
    at = str(step.at) if step.at.unit == "bytes" else f"{count} {noun}{'' if count == 1 else 's'}"
    if isinstance(step, Pause):
        held = f"for {step.seconds:g}s" if step.seconds is not None else "with no end"
        return f"UpstreamFault paused the body {held} after {at} ({step.sent} bytes sent)"
    return f"UpstreamFault ended the body cleanly after {at} ({step.sent} bytes sent)"


def stream_shaped(
    resp: UpstreamResponse,
    plan: AttemptPlan,
    s: Services,
    note: Callable[[str], None],
    on_reset: Callable[[], None],
) -> UpstreamResponse:
    """``resp`` with its body (what came with the head, and the rest) streamed through the
    plan's body actions. ``note`` hears each pause and clean end, ``on_reset`` the reset."""
    announced = len(resp.body) if resp.rest is None else resp.rest.announced
    shaper = BodyShaper(plan, announced, content_type(resp))
    noun = shaper.counter.noun if shaper.counter is not None else "event"

    def on_step(step: Pause | Stop) -> None:
        if isinstance(step, Stop) and step.reset:
            on_reset()
        else:
            note(describe(step, noun))

    body = FaultedBody(
        resp.body, resp.rest, shaper, rate=plan.slow_body_bps, clock=s.clock, sleep=s.sleep,
        on_step=on_step, trailers=resp.trailers,
    )  # fmt: skip
    # the trailers of a whole body go with the stream: only a body that reaches its end has them
    return dataclasses.replace(resp, body=b"", rest=body, trailers=())


@dataclasses.dataclass(frozen=True, slots=True)
class Shaped:
    """A whole body shaped at once."""

    resp: UpstreamResponse
    #: seconds the client waits for it (``None``: a pause with no end — forever)
    wait: float | None
    #: the body was reset (``resp.body`` is what came before)
    reset: bool
    notes: tuple[str, ...]
    #: the length the client is told (more than ``resp.body`` when it was reset)
    length: int


def shape_whole(resp: UpstreamResponse, plan: AttemptPlan) -> Shaped:
    """The buffered ``resp`` as the plan's body actions leave it."""
    shaper = BodyShaper(plan, len(resp.body), content_type(resp))
    noun = shaper.counter.noun if shaper.counter is not None else "event"
    parts: list[bytes] = []
    wait: float | None = 0.0
    reset = stopped = False
    notes: list[str] = []
    for step in [*shaper.start(), *shaper.feed(resp.body)]:
        if isinstance(step, bytes):
            parts.append(step)
            continue
        if isinstance(step, Pause):
            wait = None if wait is None or step.seconds is None else wait + step.seconds
        stopped = stopped or isinstance(step, Stop)
        reset = isinstance(step, Stop) and step.reset
        if not reset:
            notes.append(describe(step, noun))
    body = b"".join(parts)
    if wait is not None and plan.slow_body_bps:
        wait += len(body) / plan.slow_body_bps
    length = shaper.announced if shaper.announced is not None else len(body)
    # a body cut short never reaches its trailers (as a streamed one's: FaultedBody.trailers)
    trailers = () if stopped else resp.trailers
    shaped = dataclasses.replace(resp, body=body, trailers=trailers)
    return Shaped(shaped, wait, reset, tuple(notes), length)
