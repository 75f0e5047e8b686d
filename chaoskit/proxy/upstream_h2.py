"""One exchange with an HTTP/2 endpoint (``protocol: HTTP2|GRPC``, or ``h2UpgradePolicy:
UPGRADE``) through :class:`~chaoskit.proxy.http2_pool.Http2Pool`, shaped like an HTTP/1.1 one
for the request path: an :class:`~chaoskit.proxy.upstream.UpstreamResponse` whose body streams
(:class:`Http2Body`), trailers included — what gRPC needs (``grpc-status`` comes in them).

The request's ``host`` header becomes ``:authority``; hop-by-hop headers are never sent (they
are forbidden in HTTP/2, RFC 9113 §8.2.2); ``te: trailers`` is sent with a gRPC request, which a
gRPC server requires (the client's own is a hop-by-hop header chaoskit already dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chaoskit.proxy import http2_trailers
from chaoskit.proxy.budget import current_holding
from chaoskit.proxy.http1_response import Head
from chaoskit.proxy.http2_headers import Headers
from chaoskit.proxy.http2_pool import Http2Pool
from chaoskit.proxy.http2_stream import Http2Stream
from chaoskit.proxy.upstream import (
    HOP_BY_HOP,
    MAX_RESPONSE_BODY,
    BodyGuard,
    ResponseTooLarge,
    UpstreamFailure,
    UpstreamResponse,
)
from chaoskit.proxy.upstream_body import UpstreamBodyError


class Http2Body:
    """The body of an HTTP/2 response as it arrives (a
    :class:`~chaoskit.proxy.replies.BodyStream`), and its :attr:`trailers` once it ended."""

    def __init__(self, stream: Http2Stream, announced: int | None) -> None:
        self._stream: Http2Stream | None = stream
        self._last = stream
        self.announced = announced
        self.deadline: float | None = None
        self.on_end: list[Callable[[], None]] = []

    @property
    def trailers(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._last.trailers or ())

    async def read(self) -> bytes:
        stream = self._stream
        if stream is None:
            return b""
        try:
            chunk = await stream.read()
        except UpstreamFailure as f:
            self._end()
            raise UpstreamBodyError(f.kind, f.flag, f.detail) from None
        if not chunk:
            self._end()
        return chunk

    def close(self) -> None:
        stream = self._stream
        if stream is not None and not stream.ended:
            stream.reset()
        self._end()

    def _end(self) -> None:
        if self._stream is None:
            return
        self._stream = None
        callbacks, self.on_end = self.on_end, []
        for callback in callbacks:
            callback()


def _request_headers(headers: Sequence[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    authority = ""
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower == "host":
            authority = value
        elif lower == "te":
            if value.strip().lower() == "trailers":
                out.append(("te", "trailers"))
        elif lower not in HOP_BY_HOP and lower != "content-length":
            out.append((lower, value))
    grpc = any(k == "content-type" and v.startswith("application/grpc") for k, v in out)
    if grpc and ("te", "trailers") not in out:
        out.append(("te", "trailers"))  # a gRPC server requires it; hop-by-hop on HTTP/1.1
    return authority, out


async def send_h2(
    pool: Http2Pool, method: str, scheme: str, address: str, port: int, path: str,
    headers: Sequence[tuple[str, str]], body: bytes, connect_timeout: float | None,
    *, streamable: bool,
) -> UpstreamResponse:  # fmt: skip
    """The response head with its body streaming (``streamable``), or the whole response.
    The client's request trailers (:func:`chaoskit.proxy.http2_trailers.current`) end the
    request, as Envoy forwards them to an HTTP/2 upstream."""
    stream = await pool.open_stream((scheme, address, port), connect_timeout)
    authority, sent = _request_headers(headers)
    trailers = http2_trailers.current()
    try:
        await stream.send_headers(
            method, scheme, authority or address, path, sent, not body and not trailers
        )
        if body:
            await stream.send_data(body, end_stream=not trailers)
        if trailers:
            await stream.send_trailers(trailers)
        status, got = await stream.response_headers()
    except BaseException:
        stream.reset()
        raise
    kept = tuple((k, v) for k, v in got if k.lower() not in HOP_BY_HOP and k != "content-length")
    length = next((v for k, v in got if k == "content-length"), None)
    announced = int(length) if length is not None and length.isdigit() else None
    rest = Http2Body(stream, announced)
    if streamable and not stream.ended:
        return UpstreamResponse(status, "", kept, b"", rest)
    # Ended already (a unary gRPC answer's headers, message and trailers come in one read), or
    # not to be streamed: relayed whole, as an HTTP/1.1 body that came with its head is. No
    # task, no injected body events for what is all here.
    body = await _buffered(status, kept, rest)
    return UpstreamResponse(status, "", kept, body, trailers=rest.trailers)


async def _buffered(status: int, headers: Headers, rest: Http2Body) -> bytes:
    """The whole body (no streaming: mitmproxy unpatched, or a fault acts on the body), bounded
    as an HTTP/1.1 one is (:class:`~chaoskit.proxy.upstream.BodyGuard`): by
    :data:`~chaoskit.proxy.upstream.MAX_RESPONSE_BODY`, and by what the flow may still take of
    the global body budget — an announced body before any of it is read, an unannounced one as
    it arrives. The trailers stay with ``rest``."""
    guard = BodyGuard(current_holding())
    head = Head(status, "", headers, rest.announced, chunked=False, keep_alive=True)
    parts, size = [], 0
    try:
        guard.on_head(head)
        while chunk := await rest.read():
            size += len(chunk)
            if size > MAX_RESPONSE_BODY:
                raise ResponseTooLarge(status, MAX_RESPONSE_BODY)
            guard.on_body(head, len(chunk), size)
            parts.append(chunk)
    except UpstreamBodyError as e:
        raise UpstreamFailure(e.reason, e.flag, detail=e.detail) from None
    finally:
        rest.close()
    return b"".join(parts)
