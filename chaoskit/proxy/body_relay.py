"""Relaying a streamed response body to the client, within the route timeout: Envoy's rules
for a response whose headers already went downstream (envoy/source/common/router/router.cc).

Once the headers are out nothing can be retried any more. The route timeout still covers the
whole response: when it expires mid-body the client's stream is reset and the request is
logged with the status it got and ``UT``. An upstream that breaks the body off resets the
client's stream too (``UC``, or ``UPE`` for broken framing). Pure asyncio, no mitmproxy: the
client side is a :class:`Sink` (:mod:`chaoskit.proxy.response_stream` for mitmproxy, a list in
tests).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Sequence
from typing import Protocol

from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.replies import BodyStream, Reply
from chaoskit.proxy.upstream_body import UpstreamBodyError
from chaoskit.records import ResponseFlag
from chaoskit.stats import Stats


class Sink(Protocol):
    """Where the body goes: the client's stream."""

    async def send(self, data: bytes) -> None: ...

    async def end(self, trailers: Sequence[tuple[str, str]] = ()) -> None: ...

    async def reset(self) -> None: ...


class RelayEnd(enum.Enum):
    COMPLETE = "complete"
    ROUTE_TIMEOUT = "route-timeout"
    UPSTREAM_RESET = "upstream-reset"


@dataclasses.dataclass(frozen=True)
class Relayed:
    """How the body ended, and how much of it the client was sent."""

    end: RelayEnd
    sent: int
    error: UpstreamBodyError | None = None
    #: the last piece of a body of announced length, counted in ``sent`` but held back for
    #: :func:`conclude`: with it the client has the whole body, so it goes after the record
    tail: bytes = b""


async def relay_body(first: bytes, body: BodyStream, sink: Sink) -> Relayed:
    """Send ``first`` (what came with the head), then ``body`` as it arrives, until it ends,
    the upstream breaks it off, or ``body.deadline`` (``loop.time()``) passes. The client's
    stream is left open: :func:`conclude` ends or resets it once the request is recorded (a
    client that saw its body end finds the record there). ``body`` is closed however this ends
    (a cancellation — the client gone — included)."""
    sent = 0
    announced = body.announced
    tail = b""
    try:
        async with asyncio.timeout_at(body.deadline):
            chunk = first or await body.read()
            while chunk:
                if announced is not None and sent + len(chunk) >= announced:
                    tail, sent = chunk, sent + len(chunk)  # the last piece: after the record
                    chunk = await body.read()  # b"": the end, at once
                    continue
                await sink.send(chunk)
                sent += len(chunk)
                chunk = await body.read()
    except TimeoutError:
        return Relayed(RelayEnd.ROUTE_TIMEOUT, sent - len(tail), tail=tail)
    except UpstreamBodyError as e:
        return Relayed(RelayEnd.UPSTREAM_RESET, sent - len(tail), e, tail=tail)
    finally:
        body.close()
    return Relayed(RelayEnd.COMPLETE, sent, tail=tail)


async def conclude(sink: Sink, relayed: Relayed, trailers: Sequence[tuple[str, str]] = ()) -> None:
    """End the client's stream (its held-back last piece first, its ``trailers`` last), or
    reset it for a body that did not end."""
    if relayed.end is not RelayEnd.COMPLETE:
        await sink.reset()
        return
    if relayed.tail:
        await sink.send(relayed.tail)
    await sink.end(trailers)


def settle(ex: Exchange, reply: Reply, relayed: Relayed | None, stats: Stats) -> Reply:
    """What the record says of a streamed reply once its body ended (``relayed`` ``None``: the
    client went away first): bytes sent, and for a body cut off, Envoy's flag and details."""
    sent = relayed.sent if relayed is not None else ex.streamed
    ex.streamed = sent
    if relayed is None:
        ex.notes.append(f"the client went away while the body streamed ({sent} bytes sent)")
        return reply
    if relayed.end is RelayEnd.ROUTE_TIMEOUT:
        ex.flags.add(ResponseFlag.UT)
        if ex.cluster:
            stats.cluster_inc(ex.cluster, "upstream_rq_timeout")
        timeout = f"{ex.timeout:g}s " if ex.timeout is not None else ""
        ex.notes.append(
            f"route timeout {timeout}expired while the body streamed ({sent} bytes sent): "
            "the client's stream was reset"
        )
        return dataclasses.replace(reply, details="upstream_response_timeout")
    if relayed.end is RelayEnd.UPSTREAM_RESET:
        error = relayed.error
        assert error is not None
        ex.flags.add(error.flag)
        reason = error.reason.replace(" ", "_")
        detail = f": {error.detail}" if error.detail else ""
        ex.notes.append(
            f"upstream broke the body off ({error.reason}{detail}) after {sent} bytes: "
            "the client's stream was reset"
        )
        return dataclasses.replace(
            reply, details=f"upstream_reset_after_response_started{{{reason}}}"
        )
    return reply
