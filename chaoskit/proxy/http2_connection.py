"""One HTTP/2 connection to an upstream, multiplexing streams (RFC 9113), on the h2 library.

An ``asyncio.Protocol`` around h2's sans-I/O ``H2Connection``: bytes from the socket become h2
events, and each event goes to its :class:`~chaoskit.proxy.http2_stream.Http2Stream`. What
the two own together, as Envoy's HTTP/2 codec
(``source/common/http/http2/codec_impl.cc``) does for an upstream:

- **Flow control both ways.** Request bodies are sent only as far as the peer's connection and
  stream windows allow (:meth:`Http2Stream.send_data` waits for ``WINDOW_UPDATE``). Received
  data is acknowledged only as the consumer reads it (:meth:`Http2Stream.read`), so a slow
  reader holds back the upstream and one stream buffers at most :data:`STREAM_WINDOW` bytes.
- **Concurrency.** The peer's ``SETTINGS_MAX_CONCURRENT_STREAMS`` is respected: the pool
  (:mod:`chaoskit.proxy.http2_pool`) reserves a stream slot before lending a stream out.
- **GOAWAY.** No new stream starts on a connection that received one. Streams above its
  ``last_stream_id`` were never processed: they fail as Envoy's ``remote refused stream reset``
  (retriable: nothing reached the application). Streams at or below it run to their end —
  h2 alone would refuse every frame after a GOAWAY, so :class:`_H2Connection` keeps it open.
- **RST_STREAM both ways.** A peer's reset fails its stream as ``remote reset`` (Envoy's
  ``UR``; ``REFUSED_STREAM`` as ``remote refused stream reset``), with the h2 error code in the
  failure's detail; :meth:`Http2Stream.reset` resets a stream from this side.
- **Header limits.** Request headers larger than the peer's ``SETTINGS_MAX_HEADER_LIST_SIZE``
  are never sent; response headers beyond Envoy's upstream defaults (60 KiB, 100 headers: the
  same limits as :mod:`chaoskit.proxy.http1_response`) reset their stream as a protocol error.

Failures are :class:`~chaoskit.proxy.upstream.UpstreamFailure` with Envoy's reset reasons as
``kind`` (:mod:`chaoskit.proxy.http2_errors`); the refused-stream rule is ``codec_impl.cc``'s
``onStreamClose``. Header blocks and their limits are :mod:`chaoskit.proxy.http2_headers`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import Frame, GoAwayFrame

from chaoskit.proxy.hpack_literal import LiteralEncoder
from chaoskit.proxy.http1_response import MAX_HEAD
from chaoskit.proxy.http2_errors import PROTOCOL, REFUSED, TERMINATION, WIRE_ERRORS, error_name
from chaoskit.proxy.http2_stream import Http2Stream
from chaoskit.proxy.upstream import UpstreamFailure

Key = tuple[str, str, int]  # scheme, address, port

#: Receive window of each stream: the most one stream buffers while its reader is slow.
STREAM_WINDOW = 1024 * 1024
#: Receive window of the whole connection, shared by its streams.
CONNECTION_WINDOW = 16 * 1024 * 1024
#: What the HPACK decoder accepts for one header block before the whole connection fails; the
#: per-response limits (:data:`MAX_HEAD`, :data:`MAX_HEADERS`) are checked per stream below it.
DECODER_LIMIT = 4 * MAX_HEAD
#: HTTP/2's own ``SETTINGS_INITIAL_WINDOW_SIZE`` before any SETTINGS (RFC 9113 §6.9.2).
_DEFAULT_WINDOW = 65535
#: ``SETTINGS_MAX_FRAME_SIZE`` before any SETTINGS: the preface frame cannot be larger.
MAX_FRAME_SIZE_DEFAULT = 16384


class _H2Connection(h2.connection.H2Connection):  # type: ignore[misc, unused-ignore]  # h2 4.1: untyped
    """h2 closes its state machine on any GOAWAY and then refuses every frame, but RFC 9113
    §6.8 lets the streams up to ``last_stream_id`` finish (and servers draining gracefully
    rely on it): the connection stays open for them; :class:`Http2Connection` starts no new
    stream on it."""

    def _receive_goaway_frame(
        self, frame: GoAwayFrame
    ) -> tuple[list[Frame], list[h2.events.Event]]:
        frames, events = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return frames, events


class Http2Connection(asyncio.Protocol):
    """One upstream HTTP/2 connection; the pool lends its streams out. Proxy loop only.

    ``on_change`` is called whenever what the connection can take may have changed: a stream
    ended, the peer's settings changed, a GOAWAY arrived, the connection closed."""

    def __init__(
        self, key: Key, on_change: Callable[[Http2Connection], None] | None = None
    ) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        #: a GOAWAY arrived (or the stream ids ran out): no new stream starts here
        self.going_away = False
        #: the GOAWAY received, as text (``GOAWAY NO_ERROR (0x0), last stream 5``)
        self.goaway: str | None = None
        self.idle_since = time.monotonic()
        #: why the connection ended, for streams that ask afterwards
        self.failure: UpstreamFailure | None = None
        #: streams with an id (headers sent) that have not ended both ways
        self.streams: dict[int, Http2Stream] = {}
        #: streams lent out whose headers are not sent yet
        self.reserved = 0
        self._on_change = on_change
        self._ready = asyncio.Event()
        self._preface: bytearray | None = bytearray()
        self._settled = False
        self._paused = False
        #: a :meth:`flush_soon` is scheduled
        self._flush_pending = False
        self._drain: list[asyncio.Future[None]] = []
        self._window: list[asyncio.Future[None]] = []
        # Header blocks are built and checked by http2_headers (lower-case names, no
        # connection-specific headers, no forbidden bytes): h2's own pass over them again is
        # redundant work on every request.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.h2 = _H2Connection(config=config)
        self.h2.encoder = LiteralEncoder()  # type: ignore[assignment, unused-ignore]
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEAD,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            },
        )
        self.h2.decoder.max_header_list_size = DECODER_LIMIT

    # -- capacity --------------------------------------------------------------------------

    @property
    def max_concurrent_streams(self) -> int:
        limit: int = self.h2.remote_settings.max_concurrent_streams
        return limit

    @property
    def active(self) -> int:
        """Streams lent out that have not ended: they count against the peer's limit."""
        return len(self.streams) + self.reserved

    def can_open(self) -> bool:
        """May one more stream start here now?"""
        return (
            self._settled
            and not self.closed
            and not self.going_away
            and self.active < self.max_concurrent_streams
        )

    def open_stream(self) -> Http2Stream:
        """Reserve a stream slot (the caller checked :meth:`can_open`)."""
        self.reserved += 1
        return Http2Stream(self)

    async def ready(self) -> None:
        """Wait for the peer's first SETTINGS: only then are its limits known. Raises the
        connection's failure if it ended first (a peer that does not speak HTTP/2)."""
        await self._ready.wait()
        if self.failure is not None:
            raise self.failure

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - _DEFAULT_WINDOW)
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self._preface is not None and not self._check_preface(data):
            return
        try:
            events = self.h2.receive_data(data)
        except WIRE_ERRORS as e:
            self.flush()  # h2's GOAWAY, when it queued one
            self._fail(UpstreamFailure(PROTOCOL, "UPE", detail=f"HTTP/2: {e}"[:300]))
            self.close(abort=True)
            return
        for event in events:
            self._dispatch(event)
        self.flush_soon()  # with what the consumers acknowledge as they read

    def _check_preface(self, data: bytes) -> bool:
        """The server's preface is a SETTINGS frame (RFC 9113 §3.4). h2 waits for a whole
        frame before judging one, so a peer that answers the preface with HTTP/1.1 and closes
        would look like a closed connection: its first 9 bytes tell at once."""
        assert self._preface is not None
        self._preface += data
        if len(self._preface) < 9:
            return True
        head, self._preface = bytes(self._preface[:9]), None
        if head[3] == 0x4 and int.from_bytes(head[:3], "big") <= MAX_FRAME_SIZE_DEFAULT:
            return True
        detail = f"the upstream does not speak HTTP/2: it answered {head!r}"
        self._fail(UpstreamFailure(PROTOCOL, "UPE", detail=detail))
        self.close(abort=True)
        return False

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.goaway is not None:  # the peer said why before it closed
            why = f"connection closed after {self.goaway}"
        else:
            why = f"connection closed: {exc}" if exc else "connection closed by the upstream"
        self._fail(UpstreamFailure(TERMINATION, "UC", detail=why[:300]))
        self._wake(self._drain)
        self._changed()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake(self._drain)

    # -- events ----------------------------------------------------------------------------

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._data(event.data, event.flow_controlled_length)
            else:  # a stream this side already reset: give the connection window back
                self.acknowledge(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._response(event.headers)
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._trailers(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._remote_end()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream._reset_by_peer(event.error_code, event.remote_reset)
        elif isinstance(event, h2.events.WindowUpdated):
            self._wake(self._window)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._wake(self._window)  # INITIAL_WINDOW_SIZE moves every stream's window
            if not self._settled:
                self._settled = True
                self._ready.set()
            self._changed()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._goaway_received(event.error_code, event.last_stream_id)

    def _goaway_received(self, code: int | None, last_stream_id: int | None) -> None:
        self.going_away = True
        last = last_stream_id if last_stream_id is not None else 0
        detail = self.goaway = f"GOAWAY {error_name(code)}, last stream {last}"
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last:
                why = f"{detail}: stream {stream_id} never processed"
                stream._fail(UpstreamFailure(REFUSED, "UR", detail=why))
        if not self._settled:
            self._fail(UpstreamFailure(PROTOCOL, "UPE", detail=detail))
            self.close(abort=True)
            return
        self._changed()

    # -- used by the streams ---------------------------------------------------------------

    def flush(self) -> None:
        """Write what h2 queued, now."""
        self._flush_pending = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write what h2 queued once the running callback is done: the frames a request (or
        several streams' acknowledgements) queues in one go leave in one write, one system
        call, instead of one each. What is queued stays in h2 until then, so an immediate
        :meth:`flush` (or :meth:`close`) takes it along."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        if self._flush_pending:
            self.flush()

    def acknowledge(self, size: int, stream_id: int) -> None:
        """The consumer took ``size`` flow-controlled bytes: the peer may send that much more."""
        if size <= 0 or self.closed:
            return
        try:
            self.h2.acknowledge_received_data(size, stream_id)
        except WIRE_ERRORS:
            return
        self.flush_soon()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self._paused and not self.closed:
            await self._wait(self._drain)

    async def window(self) -> None:
        """Wait for a change to the send windows (or to a stream's state)."""
        await self._wait(self._window)

    def stream_started(self, stream: Http2Stream, stream_id: int) -> None:
        self.reserved -= 1
        self.streams[stream_id] = stream

    def stream_done(self, stream: Http2Stream, stream_id: int | None) -> None:
        """``stream`` ended both ways (or was given up before its headers were sent)."""
        if stream_id is None:
            self.reserved -= 1
        elif self.streams.get(stream_id) is stream:
            del self.streams[stream_id]
        else:
            return
        if not self.active:
            self.idle_since = time.monotonic()
        self._wake(self._window)
        self._changed()

    def close(self, abort: bool = False) -> None:
        """End the connection: a GOAWAY first when it is still healthy (an idle close)."""
        if self.closed:
            return
        if not abort:
            with contextlib.suppress(*WIRE_ERRORS):
                self.h2.close_connection()
            self.flush()
        self.closed = True
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    # -- internals -------------------------------------------------------------------------

    def _fail(self, failure: UpstreamFailure) -> None:
        """The connection ended: every stream still running fails with ``failure``."""
        if self.failure is None:
            self.failure = failure
        for stream in list(self.streams.values()):
            stream._fail(failure)
        if not self._ready.is_set():
            self._ready.set()
        self._wake(self._window)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    @staticmethod
    async def _wait(waiters: list[asyncio.Future[None]]) -> None:
        future = asyncio.get_running_loop().create_future()
        waiters.append(future)
        try:
            await future
        finally:
            if future in waiters:
                waiters.remove(future)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for future in waiters:
            if not future.done():
                future.set_result(None)
        waiters.clear()
