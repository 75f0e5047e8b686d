"""Guards on mitmproxy's HTTP/1 server for what Envoy's HTTP/1 codec bounds and mitmproxy does not.

The wrappers of mitmproxy's HTTP/1 and connection internals are here (:func:`wrappers`); they
are installed, with a version guard each, by :mod:`chaoskit.proxy.patches` (``http1.*`` and
``server.handle_connection`` there), which the runtime applies before it builds the Master. A
mitmproxy whose wrapped code is not one chaoskit knows is left as it is, and says so in the log.

- **Request heads** (``Http1Server.read_headers``): an unfinished head is cut off at 64 KiB
  (431; mitmproxy's own "FIXME: protect against header size DoS"), and a head line with a
  control character — a bare CR, NUL, ``\\x0b``... — is answered 400 as h11 hands the lines
  over, before mitmproxy parses them: mitmproxy strips header values with ``bytes.strip()``,
  which also removes ``\\x0b``, ``\\x0c`` and CR, so the core's check of the parsed value
  never saw those at a value's edge.
- **Request header timeout** (``Http1Server._handle_event``): a head not complete within
  ``chaoskit_request_headers_timeout`` of the connection opening (first request) or of its first
  byte (later requests on the connection) gets Envoy's ``408 request header timeout`` and the
  connection is closed. mitmproxy's own idle timeout (600 s) restarts with every byte, so it
  never ends a client that sends one byte a second. (A client that sends nothing at all has no
  HTTP/1 server yet: :class:`~chaoskit.proxy.limits.DownstreamLimits` times it, and
  :func:`close_client` answers it.)
- **Chunked request bodies** (``Http1Server.read_body``): what mitmproxy must buffer without
  being able to hand it on — a chunk-size line, its extensions, trailers — is capped at 64 KiB
  (400); h11's reader waits for the CRLF and mitmproxy buffered everything until then (400 MB
  held, never returned). Trailers are accepted and dropped, as Envoy does by default: mitmproxy
  raised ``NotImplementedError`` on them, logged a traceback and left the connection hanging.
- **Data sent while a request is in flight** (``Http1Server._handle_event``): mitmproxy keeps
  reading and buffering it; past 64 KiB the connection is closed (Envoy stops reading instead;
  the request then ends as a disconnect, ``DC``).
- **Closing** (``ConnectionHandler.handle_connection``): a connection closed while its reader
  waited for mitmproxy's event lock left the loop without closing its socket — the client's
  sends stalled and a descriptor leaked, one per client cut off mid-body.

These replies are written by the codec, before mitmproxy makes a flow, so they are not in the
records or the access log; each is logged (INFO) and counted (:func:`set_stat_sink`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from chaoskit.clock import SYSTEM_CLOCK
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

#: A wrapper: takes mitmproxy's original method, returns the method that replaces it.
Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


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


def _count(stat: str) -> None:
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


class _InvalidCharacters(Exception):
    """Raised from inside mitmproxy's parser when a head line holds a control character."""


@functools.cache
def wrappers() -> dict[str, Wrap]:
    """The wrappers, by the name of the method each replaces (``"read_headers"``: of
    ``Http1Server``; ``"handle_connection"``: of ``ConnectionHandler``); empty when
    mitmproxy's internals moved. Built once: the classes they use are made here."""
    try:
        import h11  # noqa: PLC0415 - mitmproxy's dependency, imported with it
        from h11._readers import ChunkedReader  # noqa: PLC0415
        from h11._receivebuffer import ReceiveBuffer  # noqa: PLC0415
        from mitmproxy.connection import ConnectionState  # noqa: PLC0415
        from mitmproxy.proxy import commands, events  # noqa: PLC0415
        from mitmproxy.proxy.layers.http._base import ReceiveHttp  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a mitmproxy whose internals moved
        return {}

    class CheckedBuffer(ReceiveBuffer):
        """mitmproxy's receive buffer, checking each head (and trailer section) it hands out."""

        def maybe_extract_lines(self) -> list[bytearray] | None:
            lines: list[bytearray] | None = super().maybe_extract_lines()
            if lines and invalid_head_lines(lines):
                raise _InvalidCharacters
            return lines

    class TrailerlessChunkedReader(ChunkedReader):
        """h11's chunked reader, with trailers read (and checked) but dropped."""

        def __call__(self, buf: Any) -> Any:
            event = super().__call__(buf)
            if isinstance(event, h11.EndOfMessage) and event.headers:
                return h11.EndOfMessage()
            return event

    class HeadTimeout(commands.RequestWakeup):
        """The request header timer: a wakeup chaoskit's guard asked for, not mitmproxy."""

    def peer(layer: Any) -> str:
        address = getattr(layer.conn, "peername", None)
        return f"{address[0]}:{address[1]}" if address else "a client"

    def reject(layer: Any, reply: bytes, why: str, stat: str, *, stream: bool) -> Iterator[Any]:
        """Answer with ``reply`` and close; ``stream``: mitmproxy already has the request's
        headers, so its stream is told the request failed (as for h11's own errors)."""
        logger.info("chaoskit: %s from %s; connection closed", why, peer(layer))
        _count(stat)
        yield commands.SendData(layer.conn, reply)
        yield commands.CloseConnection(layer.conn)
        if stream:
            error = layer.ReceiveProtocolError
            yield ReceiveHttp(error(layer.stream_id, why, code=error.code))
        layer.state = layer.done

    def timer_of(layer: Any) -> HeadTimer | None:
        timer: HeadTimer | None = layer.__dict__.get("_chaoskit_timer")
        return timer

    def arm(layer: Any, timer: HeadTimer) -> Iterator[Any]:
        delay = timer.arm(SYSTEM_CLOCK.monotonic())
        if delay is not None:
            yield HeadTimeout(delay)

    def guard_read_headers(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def read_headers(self: Any, event: Any) -> Iterator[Any]:
            if not isinstance(event, events.DataReceived):
                yield from original(self, event)
                return
            timer = timer_of(self)
            if timer is not None and timer.deadline is None and len(self.buf):
                timer.head_started(SYSTEM_CLOCK.monotonic())  # (a no-op once started)
            if type(self.buf) is ReceiveBuffer:
                self.buf.__class__ = CheckedBuffer
            before = self.request
            try:
                yield from original(self, event)
            except _InvalidCharacters:
                yield from reject(
                    self, BAD_REQUEST, "400 DPE http1.invalid_characters (control character "
                    "in the request head)", "http.downstream_cx_protocol_error", stream=False,
                )  # fmt: skip
                return
            if self.request is not before or self.state != self.read_headers:
                if timer is not None:
                    timer.head_complete()
            elif len(self.buf) > MAX_REQUEST_HEAD_BUFFER:
                yield from reject(
                    self, HEAD_TOO_LARGE, f"431 DPE request head over {MAX_REQUEST_HEAD_BUFFER} "
                    "bytes", "http.downstream_cx_protocol_error", stream=False,
                )  # fmt: skip
            elif timer is not None:  # a head in progress: it has until its deadline
                yield from arm(self, timer)

        return read_headers

    def guard_read_body(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        # A plain function, not a generator: a body with a length (or none) is mitmproxy's
        # own generator, with no frame of ours around each of its commands. Only a chunked
        # reader can meet trailers, and leave bytes buffered while the body is still read
        # (a content-length reader takes all it can of the buffer).
        def read_body(self: Any, event: Any) -> Iterator[Any]:
            if not isinstance(self.body_reader, ChunkedReader):
                return original(self, event)
            return read_chunked_body(self, event)

        def read_chunked_body(self: Any, event: Any) -> Iterator[Any]:
            if type(self.body_reader) is ChunkedReader:
                self.body_reader.__class__ = TrailerlessChunkedReader
            try:
                yield from original(self, event)
            except _InvalidCharacters:  # in the trailers
                yield from reject(
                    self, BAD_REQUEST, "400 DPE http1.invalid_characters (control character "
                    "in the trailers)", "http.downstream_cx_protocol_error", stream=True,
                )  # fmt: skip
                return
            if self.state == self.read_body and len(self.buf) > MAX_REQUEST_PENDING_BUFFER:
                yield from reject(
                    self, BAD_REQUEST, "400 DPE http1.codec_error (chunk-size line, extensions "
                    f"or trailers over {MAX_REQUEST_PENDING_BUFFER} bytes)",
                    "http.downstream_cx_protocol_error", stream=True,
                )  # fmt: skip

        return read_body

    def guard_handle_event(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        # A plain function, not a generator: every event but these three (the reply's
        # events, data that cannot take the buffer past its bound) goes to mitmproxy's own
        # generator as it is, with no frame of ours around each of its commands.
        def _handle_event(self: Any, event: Any) -> Iterator[Any]:
            if isinstance(event, events.DataReceived):
                if len(self.buf) + len(event.data) <= MAX_REQUEST_PENDING_BUFFER:
                    return original(self, event)
            elif isinstance(event, events.Wakeup):
                if isinstance(event.command, HeadTimeout):
                    return on_wakeup(self)
            elif not isinstance(event, events.Start):
                return original(self, event)
            return checked(self, event)

        def checked(self: Any, event: Any) -> Iterator[Any]:
            yield from original(self, event)
            if isinstance(event, events.Start):
                seconds = timeout_seconds(
                    str(getattr(self.context.options, REQUEST_HEADERS_TIMEOUT_OPTION, "0"))
                )
                client = self.context.client
                if seconds > 0:
                    # The first head is timed from the connection's opening. No timer yet:
                    # mitmproxy makes this server when data arrives, and read_headers sets
                    # one only if that data leaves the head incomplete (a task per
                    # connection otherwise: 4 % of the CPU of a one-request connection).
                    self._chaoskit_timer = timer = HeadTimer(seconds)
                    opened = getattr(client, "timestamp_start", None)
                    waited = SYSTEM_CLOCK.wall() - opened if opened else 0.0
                    timer.head_started(SYSTEM_CLOCK.monotonic() - min(seconds, max(0.0, waited)))
            elif (
                isinstance(event, events.DataReceived)
                and self.state == self.wait
                and len(self.buf) > MAX_REQUEST_PENDING_BUFFER
            ):
                logger.info(
                    "chaoskit: %s sent over %d bytes while its request was in flight; "
                    "connection closed", peer(self), MAX_REQUEST_PENDING_BUFFER,
                )  # fmt: skip
                _count("http.downstream_cx_protocol_error")
                self.buf = ReceiveBuffer()
                yield commands.CloseConnection(self.conn)

        return _handle_event

    def on_wakeup(layer: Any) -> Iterator[Any]:
        timer = timer_of(layer)
        if timer is None:
            return
        if not timer.fired(SYSTEM_CLOCK.monotonic()):
            yield from arm(layer, timer)  # set for an earlier head: again, for this one's rest
        elif layer.state == layer.read_headers:
            yield from reject(
                layer, REQUEST_HEADER_TIMEOUT, "408 request header timeout",
                "http.downstream_rq_header_timeout", stream=False,
            )  # fmt: skip
        else:  # pragma: no cover - a head is only in progress while headers are read
            timer.head_complete()

    def guard_handle_connection(original: Callable[..., Any]) -> Callable[..., Any]:
        async def handle_connection(self: Any, connection: Any) -> None:
            try:
                await original(self, connection)
            finally:
                io = self.transports.get(connection)
                if io is not None and io.handler is asyncio.current_task():
                    # Cancelled by a close while waiting for the event lock: mitmproxy's loop
                    # left without closing the socket (a descriptor leaked per such client).
                    connection.state = ConnectionState.CLOSED
                    self.transports.pop(connection, None)
                    if io.writer is not None:
                        with contextlib.suppress(OSError):
                            io.writer.close()

        return handle_connection

    return {
        "read_headers": guard_read_headers,
        "read_body": guard_read_body,
        "_handle_event": guard_handle_event,
        "handle_connection": guard_handle_connection,
    }
