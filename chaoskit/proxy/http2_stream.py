"""One request/response exchange on an HTTP/2 connection, as its user sees it.

:class:`Http2Stream` is what :meth:`chaoskit.proxy.http2_pool.Http2Pool.open_stream` lends
out: send the headers and the body, read the response headers and the body as it arrives, the
trailers at the end, or reset it. The connection (:mod:`chaoskit.proxy.http2_connection`) feeds
it h2's events; the stream owns what they mean for one exchange: reading acknowledges data (the
upstream's window opens only as the consumer reads), sending waits for the peer's windows, and
every way an exchange can fail becomes an Envoy reset reason (:mod:`chaoskit.proxy.http2_errors`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import h2.errors
import h2.exceptions

from chaoskit.proxy.http2_errors import (
    LOCAL_RESET,
    PROTOCOL,
    REFUSED,
    REMOTE_RESET,
    TERMINATION,
    WIRE_ERRORS,
    error_name,
)
from chaoskit.proxy.http2_headers import (
    LIMITS,
    Headers,
    decode,
    header_list_size,
    over_limits,
    request_header_block,
    trailer_block,
)
from chaoskit.proxy.upstream import UpstreamFailure

if TYPE_CHECKING:
    from chaoskit.proxy.http2_connection import Http2Connection


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
        if end_stream:
            conn.flush()
        else:
            conn.flush_soon()  # with the body, which follows at once

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
            if last:
                conn.flush_soon()
            else:
                conn.flush()  # more to come: the transport's buffer level must show it
            if last:
                self._local_ended = True
                self._maybe_done()
                return
            if not view:
                return
            await conn.drain()

    async def send_trailers(self, trailers: Sequence[tuple[str, str]]) -> None:
        """End the request with ``trailers`` (a header block with END_STREAM), after a body
        sent with ``end_stream=False``. Raises ``protocol error`` (UPE) for trailers that
        cannot be sent; returns without sending them when the upstream already answered in
        full and asked for no more, as :meth:`send_data` does."""
        conn, stream_id = self.connection, self.id
        if stream_id is None:
            raise RuntimeError("send the headers of a stream before its trailers")
        if self._failure is not None:
            raise self._failure
        if self._local_ended:
            if self._remote_ended:
                return
            raise RuntimeError("the request of this stream already ended")
        try:
            block = trailer_block(trailers)
            conn.h2.send_headers(stream_id, block, end_stream=True)
        except (ValueError, h2.exceptions.ProtocolError) as e:
            why = f"{type(e).__name__}: {e}"[:300]
            self._protocol_reset(why)
            conn.flush()
            raise self._failure_or_termination() from None
        conn.flush_soon()
        self._local_ended = True
        self._maybe_done()

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
            with contextlib.suppress(*WIRE_ERRORS):  # already closed in h2: nothing to send
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
        headers = decode(raw)
        status = next((v for k, v in headers if k == ":status"), "")
        if over_limits(raw):
            self._protocol_reset(f"response headers over Envoy's limits ({LIMITS})")
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
        if over_limits(raw):  # Envoy bounds trailers as it bounds headers
            self._protocol_reset(f"response trailers over Envoy's limits ({LIMITS})", drop=False)
            return
        self.trailers = decode(raw)

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
            with contextlib.suppress(*WIRE_ERRORS):
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
