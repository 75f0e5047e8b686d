"""The guards on mitmproxy's HTTP/1 server, driven event by event (no sockets), and the
version guard: every internal chaoskit patches must still be there to patch."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from mitmproxy import http, options
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import commands, context, events, server
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.layers.http._base import ReceiveHttp
from mitmproxy.proxy.layers.http._events import (
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestProtocolError,
    ResponseEndOfMessage,
    ResponseHeaders,
)
from mitmproxy.test import tflow

from chaoskit.proxy import codec_limits, guards, patches


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


# -- what the guards rely on besides the patched methods ------------------------------------------


def test_the_connection_table_close_client_uses_is_still_there():
    """``close_client`` answers a client that never sent a byte through mitmproxy's own
    connection table; it does nothing (and the 408 is not sent) if that moved. (The patched
    methods themselves are version-guarded in test_patches.py.)"""
    assert isinstance(proxyserver.Proxyserver().connections, dict)
    fields = {f.name for f in dataclasses.fields(server.ConnectionIO)}
    assert {"handler", "writer"} <= fields
    assert "transports" in server.ConnectionHandler.__annotations__


# -- an HTTP/1 server, event by event --------------------------------------------------------


def http1_server(timeout: str = "0", opened: float | None = None) -> tuple[Any, list[Any]]:
    """A fresh HTTP/1 server; ``opened``: when (wall clock) its client connected."""
    patches.apply()
    opts = options.Options()
    opts.add_option(codec_limits.REQUEST_HEADERS_TIMEOUT_OPTION, str, timeout, "")
    client = tflow.tclient_conn()
    if opened is not None:
        client.timestamp_start = opened
    layer = _http1.Http1Server(context.Context(client, opts))
    return layer, list(layer.handle_event(events.Start()))


def feed(layer: Any, data: bytes) -> list[Any]:
    return list(layer.handle_event(events.DataReceived(layer.conn, data)))


def sent(cmds: list[Any]) -> bytes:
    return b"".join(c.data for c in cmds if isinstance(c, commands.SendData))


def closed(cmds: list[Any]) -> bool:
    return any(isinstance(c, commands.CloseConnection) for c in cmds)


def http_events(cmds: list[Any]) -> list[Any]:
    return [c.event for c in cmds if isinstance(c, ReceiveHttp)]


def respond(layer: Any) -> None:
    """Answer the request in flight (keep-alive): the server goes back to reading a head."""
    response = http.Response.make(200, b"", {"content-length": "0"})
    list(layer.handle_event(ResponseHeaders(layer.stream_id, response, False)))
    list(layer.handle_event(ResponseEndOfMessage(layer.stream_id)))
    assert layer.state == layer.read_headers


GET = b"GET http://reviews/ HTTP/1.1\r\nHost: reviews\r\n"
CHUNKED = b"POST http://reviews/ HTTP/1.1\r\nHost: reviews\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"X-A: \x0bvalue", b"X-A: value\x0b", b"X-A: \x0cvalue", b"X-A:\x0c value",
        b"X-A: value\r", b"X-A: \rvalue", b"X-A: va\x00lue", b"X-A: value\x1f", b"X-A: \x7f",
        b"X\x01-A: value",
    ],
    ids=repr,
)  # fmt: skip
def test_a_control_character_anywhere_in_a_header_line_is_400(line):
    """mitmproxy strips a value with ``bytes.strip()`` (``\\x0b``, ``\\x0c`` and CR too), so
    only the raw head shows these; Envoy's codec answers 400 ``http1.invalid_characters``."""
    layer, _ = http1_server()
    cmds = feed(layer, GET + line + b"\r\n\r\n")
    assert sent(cmds) == codec_limits.BAD_REQUEST
    assert closed(cmds)
    assert not http_events(cmds)  # mitmproxy never saw the request


@pytest.mark.parametrize(
    "head",
    [
        b"GET /\x0b HTTP/1.1\r\nHost: reviews\r\n\r\n",
        b"GET\x0c/ HTTP/1.1\r\nHost: reviews\r\n\r\n",
        b"GET / HTTP/1.1\x0b\r\nHost: reviews\r\n\r\n",
    ],
    ids=repr,
)
def test_a_control_character_in_the_request_line_is_400_too(head):
    """``bytes.split()`` takes ``\\x0b`` and ``\\x0c`` for spaces in mitmproxy's request line."""
    layer, _ = http1_server()
    assert sent(feed(layer, head)) == codec_limits.BAD_REQUEST


@pytest.mark.parametrize(
    "line", [b"X-A: a\tb", b"X-A:\tvalue\t", b"X-A: caf\xc3\xa9", b"X-A: \xe9t\xe9", b"X-A:"]
)
def test_tabs_and_non_ascii_bytes_are_not_control_characters(line):
    layer, _ = http1_server()
    cmds = feed(layer, GET + line + b"\r\n\r\n")
    assert not sent(cmds)
    assert isinstance(http_events(cmds)[0], RequestHeaders)


def test_bare_lf_line_ends_stay_accepted():
    layer, _ = http1_server()
    cmds = feed(layer, b"GET http://reviews/ HTTP/1.1\nHost: reviews\nX-A: v\n\n")
    assert isinstance(http_events(cmds)[0], RequestHeaders)


def test_an_unfinished_head_is_cut_off_at_64_kib():
    layer, _ = http1_server()
    assert not sent(feed(layer, GET + b"X-Big: " + b"a" * 60_000))
    cmds = feed(layer, b"a" * 10_000)
    assert sent(cmds) == codec_limits.HEAD_TOO_LARGE
    assert closed(cmds)


def test_head_too_large_is_envoys_431():
    assert codec_limits.HEAD_TOO_LARGE == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain\r\n"
        b"content-length: 31\r\nconnection: close\r\nserver: envoy\r\n\r\n"
        b"Request Header Fields Too Large"
    )
    assert codec_limits.REQUEST_HEADER_TIMEOUT.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert codec_limits.REQUEST_HEADER_TIMEOUT.endswith(b"\r\n\r\nrequest header timeout")


@pytest.mark.parametrize(
    "framing",
    [b"1" * 70_000, b"5;" + b"e" * 70_000, b"5\r\nhello\r\n0\r\nX-T: " + b"t" * 70_000],
    ids=["chunk-size line", "chunk extension", "trailers"],
)
def test_chunk_framing_is_buffered_up_to_64_kib_then_400(framing):
    layer, _ = http1_server()
    cmds = feed(layer, CHUNKED + framing[:60_000])
    assert not sent(cmds)
    cmds = feed(layer, framing[60_000:])
    assert sent(cmds) == codec_limits.BAD_REQUEST
    assert closed(cmds)
    # mitmproxy had the headers already: its stream is told the request failed
    assert isinstance(http_events(cmds)[-1], RequestProtocolError)


def test_request_trailers_are_accepted_and_dropped():
    """mitmproxy raised ``NotImplementedError`` here (a traceback, and a connection that hung);
    Envoy's HTTP/1 codec accepts request trailers and drops them by default."""
    layer, _ = http1_server()
    cmds = feed(layer, CHUNKED + b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n")
    kinds = [type(e) for e in http_events(cmds)]
    assert kinds == [RequestHeaders, RequestData, RequestEndOfMessage]
    assert http_events(cmds)[1].data == b"hello"
    assert not sent(cmds)


def test_a_control_character_in_a_trailer_is_400():
    layer, _ = http1_server()
    cmds = feed(layer, CHUNKED + b"5\r\nhello\r\n0\r\nX-Trailer: \x0b1\r\n\r\n")
    assert sent(cmds) == codec_limits.BAD_REQUEST
    assert isinstance(http_events(cmds)[-1], RequestProtocolError)


def test_data_sent_while_a_request_is_in_flight_is_bounded():
    layer, _ = http1_server()
    feed(layer, GET + b"\r\n")  # complete: mitmproxy now waits for the response
    assert not closed(feed(layer, b"x" * 60_000))
    cmds = feed(layer, b"x" * 10_000)
    assert closed(cmds)
    assert len(layer.buf) == 0  # what it held is let go


# -- the request header timeout -----------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(guards, "SYSTEM_CLOCK", fake)
    return fake


def wakeups(cmds: list[Any]) -> list[Any]:
    return [c for c in cmds if isinstance(c, commands.RequestWakeup)]


def test_the_first_head_is_timed_from_the_connections_opening(clock):
    # mitmproxy makes the HTTP/1 server when the first bytes arrive, here 4 s after the connect
    layer, cmds = http1_server("10s", opened=clock.wall() - 4)
    assert not wakeups(cmds)  # no timer until a head is left incomplete
    (timer,) = wakeups(feed(layer, b"GET http://rev"))
    assert timer.delay == pytest.approx(6)
    assert not wakeups(feed(layer, b"iews/ HTTP/1.1\r\n"))  # one timer per connection
    clock.now += 6
    cmds = list(layer.handle_event(events.Wakeup(timer)))
    assert sent(cmds) == codec_limits.REQUEST_HEADER_TIMEOUT
    assert closed(cmds)
    assert not feed(layer, b"Host: reviews\r\n\r\n")  # closed: nothing more is read


def test_a_head_that_arrives_at_once_sets_no_timer(clock):
    layer, cmds = http1_server("10s", opened=clock.wall())
    cmds += feed(layer, GET + b"\r\n")
    assert isinstance(http_events(cmds)[0], RequestHeaders)
    assert not wakeups(cmds)


def test_a_head_that_completes_in_time_is_not_cut(clock):
    layer, _ = http1_server("10s", opened=clock.wall())
    (timer,) = wakeups(feed(layer, b"GET http://reviews/ HTTP/1.1\r\n"))
    clock.now += 4
    cmds = feed(layer, b"Host: reviews\r\n\r\n")
    assert isinstance(http_events(cmds)[0], RequestHeaders)
    clock.now += 6
    assert list(layer.handle_event(events.Wakeup(timer))) == []  # nothing in progress


def test_a_kept_alive_connection_is_timed_from_the_next_heads_first_byte(clock):
    layer, _ = http1_server("10s", opened=clock.wall())
    (first,) = wakeups(feed(layer, b"GET http://reviews/ HTTP/1.1\r\n"))
    feed(layer, b"Host: reviews\r\n\r\n")
    clock.now += 60  # idle between requests: not timed (Envoy's idle timeout is 1 h)
    assert list(layer.handle_event(events.Wakeup(first))) == []
    respond(layer)
    (second,) = wakeups(feed(layer, b"GET http://reviews/ HTTP/1.1\r\n"))  # the next head
    assert second.delay == pytest.approx(10)
    clock.now += 9.9
    (again,) = wakeups(list(layer.handle_event(events.Wakeup(second))))  # early: set again
    assert again.delay == pytest.approx(0.1)
    cmds = feed(layer, b"Host: reviews\r\n\r\n")
    assert isinstance(http_events(cmds)[0], RequestHeaders)
    assert not sent(cmds)


def test_a_timer_set_for_an_earlier_head_is_set_again_for_the_rest(clock):
    layer, _ = http1_server("10s", opened=clock.wall())
    (first,) = wakeups(feed(layer, b"GET http://reviews/ HTTP/1.1\r\n"))
    feed(layer, b"Host: reviews\r\n\r\n")
    respond(layer)
    clock.now += 4
    assert not wakeups(feed(layer, b"GET "))  # the first timer is still out
    clock.now += 6  # it fires 6 s into this head
    (again,) = wakeups(list(layer.handle_event(events.Wakeup(first))))
    assert again.delay == pytest.approx(4)
    clock.now += 4
    assert (
        sent(list(layer.handle_event(events.Wakeup(again)))) == codec_limits.REQUEST_HEADER_TIMEOUT
    )


def test_no_timer_when_the_timeout_is_off():
    layer, cmds = http1_server("0")
    assert not wakeups(cmds)
    assert not wakeups(feed(layer, b"GET "))
