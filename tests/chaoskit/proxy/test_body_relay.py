"""Relaying a streamed body (chaoskit/proxy/body_relay.py): no sockets, no sleeps — a fake body
and a list for the client; deadlines already passed or never reached."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from chaoskit.proxy.body_relay import Relayed, RelayEnd, conclude, relay_body, settle
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.upstream_body import UpstreamBodyError
from chaoskit.records import ResponseFlag
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.router import Listener
from chaoskit.stats import Stats
from chaoskit.testing import FakeBody


class ListSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    async def send(self, data: bytes) -> None:
        self.events.append(("data", data))

    async def end(self, trailers: Sequence[tuple[str, str]] = ()) -> None:
        self.events.append(("end", b""))

    async def reset(self) -> None:
        self.events.append(("reset", b""))


def test_a_body_is_relayed_piece_by_piece_then_ended() -> None:
    body, sink = FakeBody([b"ab", b"cde"]), ListSink()
    relayed = asyncio.run(relay_body(b"0", body, sink))
    assert relayed == Relayed(RelayEnd.COMPLETE, 6)
    assert sink.events == [("data", b"0"), ("data", b"ab"), ("data", b"cde")]
    asyncio.run(conclude(sink, relayed))  # once the request is recorded
    assert sink.events[-1] == ("end", b"")
    assert body.closed  # closing a finished body is how its connection goes back


def test_the_route_deadline_resets_the_client_and_closes_the_upstream() -> None:
    async def run() -> tuple[Relayed, FakeBody, ListSink]:
        body, sink = FakeBody([b"one"], then="wait"), ListSink()
        body.deadline = asyncio.get_running_loop().time()  # expires at the first wait
        relayed = await relay_body(b"", body, sink)
        await conclude(sink, relayed)
        return relayed, body, sink

    relayed, body, sink = asyncio.run(run())
    assert relayed.end is RelayEnd.ROUTE_TIMEOUT
    assert sink.events[-1] == ("reset", b"") and ("end", b"") not in sink.events
    assert body.closed


def test_an_upstream_that_breaks_off_resets_the_client() -> None:
    error = UpstreamBodyError("connection termination", "UC")
    body, sink = FakeBody([b"x"], then=error), ListSink()
    relayed = asyncio.run(relay_body(b"", body, sink))
    assert relayed == Relayed(RelayEnd.UPSTREAM_RESET, 1, error)
    asyncio.run(conclude(sink, relayed))
    assert sink.events == [("data", b"x"), ("reset", b"")]


def test_a_cancelled_relay_closes_the_upstream_body() -> None:
    async def run() -> FakeBody:
        body = FakeBody([], then="wait")
        task = asyncio.ensure_future(relay_body(b"", body, ListSink()))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return body

    assert asyncio.run(run()).closed


def _exchange() -> Exchange:
    info = RequestInfo(method="GET", scheme="http", authority="a", path="/", headers={})
    ex = Exchange(info, [], b"", Listener.mesh(), 0.0, 0.0)
    ex.cluster, ex.timeout = "outbound|80||a", 2.0
    return ex


def test_settle_says_how_a_streamed_reply_ended() -> None:
    reply = Reply(200, local=False)
    stats = Stats()

    ex = _exchange()
    final = settle(ex, reply, Relayed(RelayEnd.ROUTE_TIMEOUT, 10), stats)
    assert (final.status, final.details, ex.streamed) == (200, "upstream_response_timeout", 10)
    assert (
        ResponseFlag.UT in ex.flags and stats.get("cluster.outbound|80||a.upstream_rq_timeout") == 1
    )
    assert "route timeout 2s expired while the body streamed (10 bytes sent)" in ex.notes[0]

    ex = _exchange()
    error = UpstreamBodyError("protocol error", "UPE", "bad chunk")
    final = settle(ex, reply, Relayed(RelayEnd.UPSTREAM_RESET, 3, error), stats)
    assert final.details == "upstream_reset_after_response_started{protocol_error}"
    assert ex.flags == {"UPE"} and "(protocol error: bad chunk) after 3 bytes" in ex.notes[0]

    ex = _exchange()
    ex.streamed = 4
    assert settle(ex, reply, None, stats) is reply
    assert ex.notes == ["the client went away while the body streamed (4 bytes sent)"]

    ex = _exchange()
    assert settle(ex, reply, Relayed(RelayEnd.COMPLETE, 7), stats) is reply
    assert (ex.flags, ex.notes, ex.streamed) == (set(), [], 7)


def test_the_last_piece_of_an_announced_body_waits_for_the_record() -> None:
    """With its last piece a client has a body of announced length whole: that piece goes
    out only in :func:`conclude`, after the request was recorded."""
    body, sink = FakeBody([b"abc", b"de"]), ListSink()
    body.announced = 5
    relayed = asyncio.run(relay_body(b"", body, sink))
    assert relayed == Relayed(RelayEnd.COMPLETE, 5, tail=b"de")
    assert sink.events == [("data", b"abc")]
    asyncio.run(conclude(sink, relayed))
    assert sink.events == [("data", b"abc"), ("data", b"de"), ("end", b"")]
