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
  sends stalled and a descriptor leaked, one per client cut off mid-body. The same wrapper
  corks the connection's writer (:mod:`chaoskit.proxy.write_cork`).

These replies are written by the codec, before mitmproxy makes a flow, so they are not in the
records or the access log; each is logged (INFO) and counted (:func:`set_stat_sink`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

from chaoskit.clock import SYSTEM_CLOCK
from chaoskit.proxy.codec_limits import (
    BAD_REQUEST,
    HEAD_TOO_LARGE,
    MAX_REQUEST_HEAD_BUFFER,
    MAX_REQUEST_PENDING_BUFFER,
    REQUEST_HEADER_TIMEOUT,
    REQUEST_HEADERS_TIMEOUT_OPTION,
    HeadTimer,
    count,
    invalid_head_lines,
    timeout_seconds,
)
from chaoskit.proxy.write_cork import cork

logger = logging.getLogger("chaoskit")

#: A wrapper: takes mitmproxy's original method, returns the method that replaces it.
Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


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
        count(stat)
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
                count("http.downstream_cx_protocol_error")
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
            io = self.transports.get(connection)
            if io is not None:
                cork(io.writer)  # one write per loop turn (chaoskit.proxy.write_cork)
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
