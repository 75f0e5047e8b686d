"""One HTTP/2 connection to an upstream, multiplexing streams (RFC 9113), on the h2 library.

An ``asyncio.Protocol`` around h2's sans-I/O ``H2Connection``: bytes from the socket become h2
events, and each event goes to its :class:`Http2Stream`. What it owns, as Envoy's HTTP/2 codec
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
``kind`` (``chaoskit/proxy/upstream.py``), so retry policy and the access log read them as they
read HTTP/1.1 ones. Envoy maps these reasons to response flags in ``router.cc``
(``streamResetReasonToResponseFlag``) and names them in ``utility.cc``
(``resetReasonToString``); the refused-stream rule is ``codec_impl.cc``'s ``onStreamClose``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack.exceptions
import hyperframe.exceptions
from hyperframe.frame import Frame, GoAwayFrame

from chaoskit.proxy.http1_response import MAX_HEAD, MAX_HEADERS
from chaoskit.proxy.upstream import (  # the HTTP/1.1 request's rules are HTTP/2's too
    _TARGET_FORBIDDEN,
    _TOKEN,
    _VALUE_FORBIDDEN,
    HOP_BY_HOP,
    UpstreamFailure,
)

Key = tuple[str, str, int]  # scheme, address, port
Headers = tuple[tuple[str, str], ...]

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

#: Envoy's reset reasons (``resetReasonToString``) used as :attr:`UpstreamFailure.kind`.
REFUSED = "remote refused stream reset"
REMOTE_RESET = "remote reset"
TERMINATION = "connection termination"
PROTOCOL = "protocol error"
LOCAL_RESET = "local reset"

#: Errors h2 and the libraries under it raise for bytes that are not valid HTTP/2.
_WIRE_ERRORS = (
    h2.exceptions.H2Error, hpack.exceptions.HPACKError, hyperframe.exceptions.HyperframeError,
)  # fmt: skip
#: Request headers h2 refuses on a connection (RFC 9113 §8.2.2): ``te`` is kept for ``trailers``.
_NOT_FORWARDED = (HOP_BY_HOP - {"te"}) | {"host"}


def error_name(code: int | None) -> str:
    """``CANCEL (0x8)``: an HTTP/2 error code as RFC 9113 §7 names it."""
    if code is None:
        return "no error code"
    try:
        name = h2.errors.ErrorCodes(code).name
    except ValueError:
        name = "UNKNOWN"
    return f"{name} (0x{code:x})"


def request_header_block(
    method: str, scheme: str, authority: str, path: str, headers: Sequence[tuple[str, str]]
) -> list[tuple[bytes, bytes]]:
    """The header block of a request: pseudo-headers first, then ``headers`` with names in
    lower case and without the connection-specific ones HTTP/2 forbids (``te`` only as
    ``trailers``, which gRPC needs).

    Raises :class:`ValueError` for anything RFC 9113 §8.2.1 and §8.3.1 forbid, which h2 does
    not check on what it sends: a method or name that is not a token, NUL, CR or LF in a
    value (a server that speaks HTTP/1.1 behind it would read a second header or request), a
    path that is not one, an authority with spaces or controls."""
    if _TOKEN.fullmatch(method) is None:
        raise ValueError(f"request method {method[:20]!r} is not a token")
    target = path.partition("#")[0]
    if not target.startswith("/") or _TARGET_FORBIDDEN.search(target):
        raise ValueError(f"request path {target[:50]!r} is not a path")
    if not authority or _TARGET_FORBIDDEN.search(authority):
        raise ValueError(f"authority {authority[:50]!r} is not a host")
    block = [
        (b":method", method.encode("ascii")),
        (b":scheme", scheme.encode("ascii")),
        (b":authority", authority.encode("utf-8", "surrogateescape")),
        (b":path", target.encode("utf-8", "surrogateescape")),
    ]
    for name, value in headers:
        lower = name.lower()
        if lower in _NOT_FORWARDED or (lower == "te" and value.strip().lower() != "trailers"):
            continue
        if _TOKEN.fullmatch(lower) is None:
            raise ValueError(f"header name {name[:40]!r} is not a token")
        if _VALUE_FORBIDDEN.search(value):
            raise ValueError(f"NUL, CR or LF in the value of header {name[:40]!r}")
        block.append((lower.encode("ascii"), value.strip(" \t").encode("utf-8", "surrogateescape")))
    return block


def header_list_size(block: Sequence[tuple[bytes, bytes]]) -> int:
    """The size HTTP/2 counts for a header list (RFC 9113 §6.5.2: name, value, 32 each)."""
    return sum(len(name) + len(value) + 32 for name, value in block)


class _H2Connection(h2.connection.H2Connection):
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
        self._drain: list[asyncio.Future[None]] = []
        self._window: list[asyncio.Future[None]] = []
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = _H2Connection(config=config)
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
        return self.h2.remote_settings.max_concurrent_streams

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
        except _WIRE_ERRORS as e:
            self.flush()  # h2's GOAWAY, when it queued one
            self._fail(UpstreamFailure(PROTOCOL, "UPE", detail=f"HTTP/2: {e}"[:300]))
            self.close(abort=True)
            return
        for event in events:
            self._dispatch(event)
        self.flush()

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
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def acknowledge(self, size: int, stream_id: int) -> None:
        """The consumer took ``size`` flow-controlled bytes: the peer may send that much more."""
        if size <= 0 or self.closed:
            return
        try:
            self.h2.acknowledge_received_data(size, stream_id)
        except _WIRE_ERRORS:
            return
        self.flush()

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
            with contextlib.suppress(*_WIRE_ERRORS):
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


class Http2Stream:
    """One request/response exchange on an :class:`Http2Connection`.

    Send the headers, then the body (if any); read the response headers, then the body chunk
    by chunk (``b""`` at its end); :attr:`trailers` once it ended. Every method raises
    :class:`~chaoskit.proxy.upstream.UpstreamFailure` when the stream failed. A stream not
    read to its end must be :meth:`reset` (``async with stream:`` does it), or it keeps a slot
    of the connection."""

    def __init__(self, conn: Http2Connection) -> None:
        self.connection = conn
        self.id: int | None = None
        #: the response's trailers (gRPC's ``grpc-status``), once the stream ended
        self.trailers: Headers | None = None
        self._status: int | None = None
        self._headers: Headers = ()
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._remote_ended = False
        self._local_ended = False
        self._failure: UpstreamFailure | None = None
        self._done = False
        self._waiters: list[asyncio.Future[None]] = []

    # -- request ---------------------------------------------------------------------------

    async def send_headers(
        self, method: str, scheme: str, authority: str, path: str,
        headers: Sequence[tuple[str, str]], end_stream: bool,
    ) -> None:  # fmt: skip
        """Start the stream. Raises ``protocol error`` (UPE) for headers that cannot be sent,
        ``remote refused stream reset`` when the connection stopped taking streams."""
        if self.id is not None or self._done:
            raise RuntimeError("the headers of this stream were already sent")
        conn = self.connection
        try:
            block = request_header_block(method, scheme, authority, path, headers)
            limit = conn.h2.remote_settings.max_header_list_size
            size = header_list_size(block)
            if limit is not None and size > limit:
                raise ValueError(
                    f"request headers of {size} bytes exceed the upstream's "
                    f"SETTINGS_MAX_HEADER_LIST_SIZE of {limit}"
                )
            while conn.h2.open_outbound_streams >= conn.max_concurrent_streams:
                self._check_connection()  # the peer lowered its limit: wait for a slot
                await conn.window()
            self._check_connection()
            stream_id = conn.h2.get_next_available_stream_id()
            conn.h2.send_headers(stream_id, block, end_stream=end_stream)
        except h2.exceptions.NoAvailableStreamIDError:
            conn.going_away = True
            self._give_up(UpstreamFailure(REFUSED, "UR", detail="HTTP/2 stream ids used up"))
            raise self._failure_or_termination() from None
        except (ValueError, h2.exceptions.ProtocolError) as e:
            why = f"{type(e).__name__}: {e}"[:300]
            self._give_up(UpstreamFailure(PROTOCOL, "UPE", detail=why))
            raise self._failure_or_termination() from None
        except UpstreamFailure as e:
            self._give_up(e)
            raise
        except BaseException:  # cancelled while waiting for a slot
            self._give_up(UpstreamFailure(LOCAL_RESET, "LR"))
            raise
        self.id = stream_id
        conn.stream_started(self, stream_id)
        self._local_ended = end_stream
        conn.flush()

    async def send_data(self, data: bytes, end_stream: bool) -> None:
        """Send body bytes as the peer's windows allow. Returns early, without error, when the
        upstream already answered in full and asked for no more (RST_STREAM ``NO_ERROR``)."""
        conn, stream_id = self.connection, self.id
        if stream_id is None:
            raise RuntimeError("send the headers of a stream before its body")
        view = memoryview(data)
        while True:
            if self._failure is not None:
                raise self._failure
            if self._local_ended:
                if self._remote_ended:
                    return  # RFC 9113 §8.1: answered in full, the rest is not wanted
                raise RuntimeError("the request of this stream already ended")
            try:
                window = conn.h2.local_flow_control_window(stream_id) if view else 0
                if view and window <= 0:
                    await conn.window()
                    continue
                size = min(len(view), window, conn.h2.max_outbound_frame_size)
                last = end_stream and size == len(view)
                if size:
                    conn.h2.send_data(stream_id, view[:size].tobytes(), end_stream=last)
                elif end_stream:
                    conn.h2.end_stream(stream_id)
                    last = True
            except h2.exceptions.ProtocolError as e:  # the stream closed under us
                self._fail(UpstreamFailure(PROTOCOL, "UPE", detail=str(e)[:300]))
                raise self._failure_or_termination() from None
            view = view[size:]
            conn.flush()
            if last:
                self._local_ended = True
                self._maybe_done()
                return
            if not view:
                return
            await conn.drain()

    # -- response --------------------------------------------------------------------------

    async def response_headers(self) -> tuple[int, Headers]:
        """The final response's status and headers (1xx skipped, pseudo-headers removed)."""
        while self._status is None:
            if self._failure is not None:
                raise self._failure
            await self._wait()
        return self._status, self._headers

    async def read(self) -> bytes:
        """The next body bytes received, ``b""`` at the end. Reading is what opens the
        upstream's window again: an unread stream holds back its sender."""
        while True:
            if self._chunks:
                chunks, self._chunks = self._chunks, collections.deque()
                size = sum(flow for _, flow in chunks)
                if self.id is not None:
                    self.connection.acknowledge(size, self.id)
                return b"".join(data for data, _ in chunks)
            if self._remote_ended:
                return b""
            if self._failure is not None:
                raise self._failure
            await self._wait()

    @property
    def ended(self) -> bool:
        """The response arrived in full (its trailers, if any, are in :attr:`trailers`)."""
        return self._remote_ended

    def reset(self, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Abandon the stream: RST_STREAM ``code`` to the upstream if it is still open there.
        Buffered body bytes are dropped (and their window given back)."""
        if self._done:
            return
        conn, stream_id = self.connection, self.id
        if stream_id is not None and not conn.closed:
            with contextlib.suppress(*_WIRE_ERRORS):  # already closed in h2: nothing to send
                conn.h2.reset_stream(stream_id, code)
            conn.flush()
        self._drop_buffered()
        why = f"RST_STREAM {error_name(code)} sent"
        self._fail(UpstreamFailure(LOCAL_RESET, "LR", detail=why))

    async def __aenter__(self) -> Http2Stream:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not (self._remote_ended and self._local_ended):
            self.reset()
        self._drop_buffered()

    # -- from the connection ---------------------------------------------------------------

    def _response(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        headers = _decode(raw)
        status = next((v for k, v in headers if k == ":status"), "")
        if _over_limits(raw):
            self._protocol_reset(f"response headers over Envoy's limits ({_LIMITS})")
            return
        if not status.isdigit():
            self._protocol_reset(f"invalid :status {status[:20]!r}")
            return
        self._status = int(status)
        self._headers = tuple((k, v) for k, v in headers if not k.startswith(":"))
        self._wake()

    def _data(self, data: bytes, flow: int) -> None:
        self._chunks.append((data, flow))
        self._wake()

    def _trailers(self, raw: Sequence[tuple[bytes, bytes]]) -> None:
        if _over_limits(raw):  # Envoy bounds trailers as it bounds headers
            self._protocol_reset(f"response trailers over Envoy's limits ({_LIMITS})", drop=False)
            return
        self.trailers = _decode(raw)

    def _remote_end(self) -> None:
        if self._done:
            return  # failed already (trailers over the limits): the end does not undo it
        self._remote_ended = True
        self._wake()
        self._maybe_done()

    def _reset_by_peer(self, code: int, remote: bool) -> None:
        if not remote:  # h2 reset it: the peer broke the protocol on this stream
            why = f"HTTP/2 stream error {error_name(code)}"
            self._fail(UpstreamFailure(PROTOCOL, "UPE", detail=why))
        elif self._remote_ended and code == h2.errors.ErrorCodes.NO_ERROR:
            self._local_ended = True  # answered in full; the rest of the request is not wanted
            self._finish()
        else:
            kind = REFUSED if code == h2.errors.ErrorCodes.REFUSED_STREAM else REMOTE_RESET
            self._fail(UpstreamFailure(kind, "UR", detail=f"RST_STREAM {error_name(code)}"))

    def _fail(self, failure: UpstreamFailure) -> None:
        if self._done:
            return
        if self._failure is None:  # a response that ended in full still reads to its end
            self._failure = failure
        self._local_ended = True
        self._finish()

    # -- internals -------------------------------------------------------------------------

    def _protocol_reset(self, detail: str, drop: bool = True) -> None:
        """Reset the stream for what the peer sent; ``drop=False`` keeps the body received
        before (trailers: it came in good order, and is read before the failure)."""
        conn = self.connection
        if self.id is not None:
            with contextlib.suppress(*_WIRE_ERRORS):
                conn.h2.reset_stream(self.id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        if drop:
            self._drop_buffered()
        self._fail(UpstreamFailure(PROTOCOL, "UPE", detail=detail))

    def _give_up(self, failure: UpstreamFailure) -> None:
        """Headers never sent: the reserved slot goes back."""
        if self._failure is None:
            self._failure = failure
        self._local_ended = True
        self._finish()

    def _check_connection(self) -> None:
        conn = self.connection
        if conn.closed:
            raise conn.failure or UpstreamFailure(TERMINATION, "UC")
        if conn.going_away:
            raise UpstreamFailure(REFUSED, "UR", detail="the connection received GOAWAY")

    def _failure_or_termination(self) -> UpstreamFailure:
        return self._failure or self.connection.failure or UpstreamFailure(TERMINATION, "UC")

    def _maybe_done(self) -> None:
        if self._remote_ended and self._local_ended:
            self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._wake()
        self.connection.stream_done(self, self.id)

    def _drop_buffered(self) -> None:
        size = sum(flow for _, flow in self._chunks)
        self._chunks.clear()
        if size and self.id is not None:
            self.connection.acknowledge(size, self.id)

    async def _wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        finally:
            if future in self._waiters:
                self._waiters.remove(future)

    def _wake(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()


_LIMITS = f"{MAX_HEAD // 1024} KiB, {MAX_HEADERS} headers"


def _over_limits(raw: Sequence[tuple[bytes, bytes]]) -> bool:
    return len(raw) > MAX_HEADERS or header_list_size(raw) > MAX_HEAD


def _decode(raw: Sequence[tuple[bytes, bytes]]) -> Headers:
    """Header names are ASCII (h2 checked them), values Latin-1 as the HTTP/1.1 reader's."""
    return tuple((bytes(k).decode("ascii", "replace"), bytes(v).decode("latin-1")) for k, v in raw)
