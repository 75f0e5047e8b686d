"""What Envoy's HTTP/1 codec bounds on a downstream connection, as plain values and rules.

The limits, the replies the codec writes itself (before any flow exists), the request header
timer and the counting of what the guards do: no mitmproxy internals here, so each is tested
on its own. :mod:`chaoskit.proxy.guards` applies them inside mitmproxy's HTTP/1 server.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from chaoskit.config.durations import parse_duration

logger = logging.getLogger("chaoskit")

#: A request head still incomplete after this many bytes is answered 431 and the connection
#: closed (Envoy's ``max_request_headers_kb`` is 60 KiB of headers; this bounds the buffer).
MAX_REQUEST_HEAD_BUFFER = 64 * 1024
#: What mitmproxy may buffer of a request beyond what it can hand on: chunk-size lines, chunk
#: extensions and trailers of a chunked body, and data sent while a request is in flight.
MAX_REQUEST_PENDING_BUFFER = MAX_REQUEST_HEAD_BUFFER
#: The mitmproxy option (registered by :class:`~chaoskit.proxy.limits.DownstreamLimits`) that
#: holds the request header timeout, as a duration (``"10s"``; ``"0"`` turns it off).
REQUEST_HEADERS_TIMEOUT_OPTION = "chaoskit_request_headers_timeout"
#: A timer may fire this much before its deadline and still count as reaching it.
_TIMER_SLACK = 0.001
#: Control characters are invalid anywhere in a head line (RFC 9110 §5.5, RFC 9112 §3), HTAB
#: excepted. The lines are as h11 splits them: LF and one CR before it removed, so a CR left
#: in a line is a bare CR.
_INVALID_IN_LINE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def codec_reply(status: int, reason: str, body: str) -> bytes:
    """A local reply as Envoy's HTTP/1 codec writes it (text body, connection closed)."""
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n"
        f"content-length: {len(data)}\r\nconnection: close\r\nserver: envoy\r\n\r\n"
    )
    return head.encode() + data


#: What a client whose request head grows past :data:`MAX_REQUEST_HEAD_BUFFER` gets.
HEAD_TOO_LARGE = codec_reply(
    431, "Request Header Fields Too Large", "Request Header Fields Too Large"
)
#: Envoy's reply to an HTTP/1 codec error (``http1.invalid_characters``, ``http1.codec_error``).
BAD_REQUEST = codec_reply(400, "Bad Request", "Bad Request")
#: Envoy's ``request_headers_timeout`` reply (details ``request_header_timeout``).
REQUEST_HEADER_TIMEOUT = codec_reply(408, "Request Timeout", "request header timeout")


def invalid_head_lines(lines: Sequence[bytes | bytearray]) -> bool:
    """Does any line of a head (as h11 split it) hold a control character other than HTAB?"""
    # One search over the lines joined by HTAB (allowed, and the pattern matches one byte, so
    # no match spans two lines): a head's 5-20 lines cost one call, not one each.
    return _INVALID_IN_LINE.search(b"\t".join(lines)) is not None


@dataclasses.dataclass(slots=True)
class HeadTimer:
    """When the request head in progress must be complete, with one timer per connection.

    mitmproxy timers (``RequestWakeup``) cannot be cancelled, so a connection has at most one
    outstanding, set only while a head is incomplete (a head that arrives in one read needs
    none); when it fires before the current deadline (the head it was set for is done, and a
    later one began), it is set again for the rest."""

    timeout: float
    #: when the head in progress must be complete; ``None``: no head in progress
    deadline: float | None = None
    #: a timer is outstanding
    armed: bool = False

    def head_started(self, now: float) -> None:
        """A head may begin: the connection opened, or bytes of the next request arrived."""
        if self.deadline is None:
            self.deadline = now + self.timeout

    def head_complete(self) -> None:
        self.deadline = None

    def arm(self, now: float) -> float | None:
        """The head in progress is not complete: the delay of a timer to set, if none is."""
        if self.deadline is None or self.armed:
            return None
        self.armed = True
        return max(0.0, self.deadline - now)

    def fired(self, now: float) -> bool:
        """The timer fired: has the head in progress timed out? (If not, :meth:`arm` again.)"""
        self.armed = False
        return self.deadline is not None and now >= self.deadline - _TIMER_SLACK


@functools.lru_cache(maxsize=8)
def timeout_seconds(text: str) -> float:
    """The option's duration in seconds; anything unparsable (refused when set) is off."""
    try:
        return max(0.0, parse_duration(text))
    except ValueError:
        return 0.0


_stat_sink: Callable[[str], None] | None = None


def set_stat_sink(sink: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Where the guards count what they do (the running proxy's stats, by Envoy stat name);
    returns the previous sink. One mitmproxy Master per process, so one sink."""
    global _stat_sink
    previous, _stat_sink = _stat_sink, sink
    return previous


def count(stat: str) -> None:
    """Count ``stat`` in the running proxy's stats (if any); never raises."""
    sink = _stat_sink
    if sink is not None:
        try:
            sink(stat)
        except Exception:  # counting must never break the connection
            logger.exception("chaoskit: could not count %s", stat)


def close_client(client: Any, reply: bytes) -> bool:
    """Write ``reply`` to a client connection and close it, from outside its protocol layers
    (which do not exist yet for a client that never sent a byte). Uses mitmproxy's connection
    table (``Proxyserver.connections``, ``ConnectionHandler.transports``) the way its own idle
    timeout does; returns False when those are gone or the connection already is."""
    try:
        from mitmproxy import ctx  # noqa: PLC0415

        handler = ctx.master.addons.get("proxyserver").connections[client.id]
        io = handler.transports[handler.client]
        writer, task = io.writer, io.handler
    except Exception:
        return False
    if writer is None or task is None or writer.is_closing():
        return False
    writer.write(reply)
    task.cancel("chaoskit: request header timeout")  # closes, after what was written
    return True
