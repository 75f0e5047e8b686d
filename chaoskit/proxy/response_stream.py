"""Streamed replies through mitmproxy: the head at once, the body as it arrives.

mitmproxy streams a body only when it forwards a request itself; a reply an addon sets in the
``request`` hook (chaoskit answers every request that way) is sent whole, after the hook. Two
patches (``stream.start`` and ``layer.inject_body`` in :mod:`chaoskit.proxy.patch_table`) make
it stream: a response whose ``stream`` is a :class:`StreamStart` is sent head first, and the
body pieces are injected into its HTTP stream afterwards (:class:`ClientStream`), as
``ResponseData`` events mitmproxy frames for the client's protocol (chunked HTTP/1.1, HTTP/2
DATA frames). The client connection's write buffer is drained after each piece, so a slow
client slows the upstream down (the upstream connection stops being read) instead of filling
memory. An HTTP/2 client can also hold its stream's flow-control window shut: mitmproxy then
queues the DATA frames itself, without limit, so the relay waits while more than
:data:`CLIENT_STREAM_BUFFER` is queued for the stream (Envoy's per-stream buffer limit, with
the upstream read-disabled above it) — the upstream's own window then holds it back.
:class:`StreamedReplies` runs each relay in a task of its own, watched for the client going
away like a request (:class:`~chaoskit.proxy.disconnects.ClientWatch`), and records the
request when its body ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.proxy import events

from chaoskit.proxy.body_relay import Relayed, conclude, relay_body, settle
from chaoskit.proxy.disconnects import ClientWatch
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.replies import Reply
from chaoskit.stats import Stats

logger = logging.getLogger("chaoskit")


class StreamStart:
    """Set as ``flow.response.stream`` of a streamed reply: the patched ``send_response``
    sends only its head, then sets :attr:`started`."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = asyncio.Event()

    def __call__(self, data: bytes) -> bytes:  # mitmproxy passes each piece through it
        return data


#: What a streamed reply may have queued for an HTTP/2 client whose window is shut, before the
#: relay stops reading the upstream: Envoy's default per-connection (and per-stream) buffer
#: limit, ``per_connection_buffer_limit_bytes``.
CLIENT_STREAM_BUFFER = 1024 * 1024
#: How often a relay held back by an HTTP/2 client's shut window looks again (mitmproxy says
#: nothing when the window opens): at first, then twice as long each time up to the last.
HELD_POLL_SECONDS = (0.01, 0.1)


@dataclasses.dataclass
class BodyData(events.MessageInjected[bytes]):
    """A piece of a streamed reply's body. The layer that takes it sets :attr:`held` for an
    HTTP/2 client: the bytes of the stream mitmproxy still queues, the window being shut."""

    held: Callable[[], int] | None = dataclasses.field(default=None, init=False, compare=False)


@dataclasses.dataclass
class BodyEnd(events.MessageInjected[None]):
    """The end of a streamed reply's body."""


@dataclasses.dataclass
class BodyTrailers(events.MessageInjected[tuple[tuple[str, str], ...]]):
    """A streamed reply's trailers (``grpc-status``), just before its end: HTTP/2 clients only
    (HTTP/1.1 trailers would need the client's ``te: trailers`` and a chunked body)."""


@dataclasses.dataclass
class BodyReset(events.MessageInjected[str]):
    """The body was broken off: the client's stream is reset (HTTP/1.1: its connection
    closes; HTTP/2: RST_STREAM)."""


def start(response: http.Response) -> StreamStart:
    marker = StreamStart()
    response.stream = marker
    return marker


class ClientStream:
    """The client side of one streamed reply, for :func:`~chaoskit.proxy.body_relay.relay_body`."""

    def __init__(self, flow: http.HTTPFlow, handler: Any) -> None:
        self.flow = flow
        self.handler = handler
        #: body bytes handed to the client's connection so far
        self.sent = 0

    async def send(self, data: bytes) -> None:
        event = BodyData(self.flow, data)
        await self.handler.server_event(event)
        self.sent += len(data)
        io = self.handler.transports.get(self.handler.client)
        writer = getattr(io, "writer", None)
        if writer is not None:
            with contextlib.suppress(OSError):  # the client went away: the watch cancels us
                await writer.drain()
        held = event.held
        delay, longest = HELD_POLL_SECONDS
        while held is not None and held() > CLIENT_STREAM_BUFFER:
            # a reset or a cut stream empties it too; a client that never reads again costs
            # ten wake-ups a second until the route timeout or its going away ends the relay
            await asyncio.sleep(delay)
            delay = min(2 * delay, longest)

    async def end(self, trailers: Sequence[tuple[str, str]] = ()) -> None:
        if trailers and self.flow.request.http_version == "HTTP/2.0":
            await self.handler.server_event(BodyTrailers(self.flow, tuple(trailers)))
        await self.handler.server_event(BodyEnd(self.flow, None))

    async def reset(self) -> None:
        await self.handler.server_event(BodyReset(self.flow, "upstream body cut off"))


def _handler(flow: http.HTTPFlow) -> Any:
    """mitmproxy's handler of the flow's client connection (``None``: gone)."""
    proxyserver = ctx.master.addons.get("proxyserver")
    connections = getattr(proxyserver, "connections", {})
    return connections.get(flow.client_conn.id)


class StreamedReplies:
    """Relays the bodies of streamed replies, one task each; ``finish`` records a request
    once its body ended (``client_gone`` when the client left first)."""

    def __init__(
        self,
        watch: ClientWatch,
        stats: Callable[[], Stats],
        finish: Callable[[http.HTTPFlow, Exchange, Reply, bool], None],
        tasks: set[asyncio.Task[Any]],
    ) -> None:
        self.watch = watch
        self.stats = stats
        self.finish = finish
        self.tasks = tasks

    def start(self, flow: http.HTTPFlow, ex: Exchange, reply: Reply) -> None:
        marker = flow.response.stream if flow.response is not None else None
        if reply.stream is None or not isinstance(marker, StreamStart):
            raise ValueError("not a streamed reply")
        task = asyncio.ensure_future(self._run(flow, ex, reply, marker))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(
        self, flow: http.HTTPFlow, ex: Exchange, reply: Reply, marker: StreamStart
    ) -> None:
        body = reply.stream
        assert body is not None
        relayed: Relayed | None = None
        gone = True  # until the relay says otherwise (a cancellation: the client, a shutdown)
        failed = False
        sink: ClientStream | None = None
        try:

            async def work() -> Relayed:
                nonlocal sink
                await marker.started.wait()
                handler = _handler(flow)
                if handler is None:
                    raise asyncio.CancelledError  # pragma: no cover - gone before the head
                sink = ClientStream(flow, handler)
                return await relay_body(reply.body, body, sink)

            relayed, gone = await self.watch.run(flow, work(), lambda: None)
        except Exception:
            logger.exception("chaoskit could not stream the body of request %s", ex.request_id)
            failed, gone = True, False
        finally:
            body.close()
            final = dataclasses.replace(reply, stream=None, body=b"")
            ex.streamed = sink.sent if sink is not None else 0  # what a cut-off relay sent
            if failed:  # said as it happened: not a client that went away
                ex.notes.append(
                    f"chaoskit internal error while streaming the body ({ex.streamed} bytes "
                    "sent): the client's stream was reset"
                )
            else:
                final = settle(ex, final, relayed, self.stats())
            self.finish(flow, ex, final, gone)
        if sink is None or gone:
            return
        try:  # recorded first: a client that saw its body end finds the record there
            if relayed is not None:
                await conclude(sink, relayed, getattr(body, "trailers", ()))
            else:
                await sink.reset()
        except Exception:
            logger.exception("chaoskit could not end the body of request %s", ex.request_id)


# -- the patches (installed by chaoskit.proxy.patches) ------------------------------------------

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


@functools.cache
def wrappers() -> dict[str, Wrap]:
    """``HttpStream.send_response``: a :class:`StreamStart` reply sends its head and waits for
    its body; ``HttpLayer._handle_event``: the injected body events reach the flow's stream,
    in whichever HTTP layer (an intercepted tunnel nests one) holds it."""
    from mitmproxy.proxy.layers import http as http_layer  # noqa: PLC0415
    from mitmproxy.proxy.layers.http import _events  # noqa: PLC0415

    send_http: Any = http_layer.SendHttp
    layers: Any = _events
    # mitmproxy 12 names its error kinds (ErrorCode); 11 passes the HTTP status, 502 for a server
    # error: either way an HTTP/2 client gets RST_STREAM INTERNAL_ERROR and an HTTP/1 client a
    # closed connection once the head is out.
    error_code = getattr(layers, "ErrorCode", None)
    server_error = error_code.GENERIC_SERVER_ERROR if error_code is not None else 502

    def wrap_send(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def send_response(self: Any, already_streamed: bool = False) -> Iterator[Any]:
            marker = getattr(self.flow.response, "stream", None)
            if already_streamed or not isinstance(marker, StreamStart):
                yield from original(self, already_streamed)
                return
            yield send_http(
                layers.ResponseHeaders(self.stream_id, self.flow.response, end_stream=False),
                self.context.client,
            )
            self.server_state = self.state_stream_response_body
            marker.started.set()

        return send_response

    def translate(event: Any, stream_id: int) -> Any:
        if isinstance(event, BodyData):
            return layers.ResponseData(stream_id, event.message)
        if isinstance(event, BodyTrailers):
            fields = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in event.message]
            return layers.ResponseTrailers(stream_id, http.Headers(fields))
        if isinstance(event, BodyEnd):
            return layers.ResponseEndOfMessage(stream_id)
        return layers.ResponseProtocolError(stream_id, event.message, server_error)

    def held_by_client(layer: Any, stream_id: int) -> Callable[[], int] | None:
        """What mitmproxy's HTTP/2 connection to the client queues for ``stream_id`` while the
        client's window is shut (``BufferedH2Connection.stream_buffers``); ``None`` for an
        HTTP/1 client, whose socket's write buffer says it instead."""
        h2_conn = getattr(layer.connections.get(layer.context.client), "h2_conn", None)
        buffers = getattr(h2_conn, "stream_buffers", None)
        if buffers is None:
            return None

        def held() -> int:
            queued = buffers.get(stream_id)
            return sum(len(item.data) for item in queued) if queued else 0

        return held

    def wrap_layer(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def _handle_event(self: Any, event: Any) -> Iterator[Any]:
            if not isinstance(event, (BodyData, BodyTrailers, BodyEnd, BodyReset)):
                yield from original(self, event)
                return
            for stream in list(self.streams.values()):
                if getattr(stream, "flow", None) is event.flow:
                    if stream.server_state == stream.state_stream_response_body:
                        yield from self.event_to_child(stream, translate(event, stream.stream_id))
                        if isinstance(event, BodyData):
                            event.held = held_by_client(self, stream.stream_id)
                    return
            # not here: into the tunnels this layer carries (an intercepted CONNECT)
            for stream in list(self.streams.values()):
                if stream._handle_event == stream.passthrough:
                    yield from self.event_to_child(stream, event)

        return _handle_event

    return {"send_response": wrap_send, "_handle_event": wrap_layer}
