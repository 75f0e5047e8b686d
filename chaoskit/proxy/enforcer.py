"""The mitmproxy addon that puts every HTTP request through the request path, and answers it.

It only translates: a flow becomes an :class:`~chaoskit.proxy.exchange.Exchange`, the
:class:`~chaoskit.proxy.pipeline.Pipeline` decides and forwards, and the reply becomes
``flow.response``. It answers every flow itself (mitmproxy never forwards one), and it fails
closed: an exception anywhere becomes a 500, never a request that slips past its faults — an
exception escaping a hook is only logged by mitmproxy, which then sends the original request to
its absolute-form URL's host, outside every rule and unrecorded. The 500 names only a request
id; the cause goes to the log and the record, never to the client.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from chaoskit.proxy import http2_trailers, patches, replies, response_stream, responses
from chaoskit.proxy.codec import protocol_violation, request_authority
from chaoskit.proxy.disconnects import ClientWatch
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.identity import CallerIdentity, workload
from chaoskit.proxy.listeners import ListenerTable, from_self
from chaoskit.proxy.loops import HOPS_HEADER
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.response_stream import StreamedReplies
from chaoskit.proxy.websocket_relay import HandedOver, WebSockets, handed_over
from chaoskit.records import Record
from chaoskit.routing.request import RequestInfo, split_authority
from chaoskit.routing.router import Listener

logger = logging.getLogger("chaoskit")

#: mitmproxy's request versions as Envoy's %PROTOCOL% names them
_PROTOCOLS = {"HTTP/2.0": "HTTP/2", "HTTP/3": "HTTP/3", "HTTP/1.0": "HTTP/1.0"}

#: The note on a mesh request whose caller is anonymous while the mesh declares workloads: its
#: sourceLabels, sourceNamespace and Sidecar scope are silently not the ones the user meant.
UNNAMED_CALLER = (
    "the caller is anonymous (no name in the proxy URL, not on a --workload listener) "
    "although the mesh declares workloads: sourceLabels and Sidecar scopes do not apply to it"
)


def _safe_target(flow: http.HTTPFlow) -> str:
    try:
        return f"{flow.request.method} {flow.request.pretty_url}"[:200]
    except Exception:
        return "a request"


def _internal_error(ex: Exchange | None, e: Exception, step: str) -> Reply:
    """The 500 for an exception inside the enforcer (at ``step``): the cause goes to the log
    and the record's notes, only a request id to the client."""
    request_id = ex.request_id if ex is not None else str(uuid.uuid4())
    logger.exception("chaoskit core error on request %s (%s)", request_id, step or "path")
    if ex is not None:
        ex.notes.append(f"chaoskit internal error: {step}{type(e).__name__}: {e}")
    return replies.internal_error(request_id)


class Enforcer:
    def __init__(
        self,
        pipeline: Pipeline,
        identity: CallerIdentity,
        listeners: ListenerTable,
        own: OwnSockets,
    ) -> None:
        self.pipeline = pipeline
        self.identity = identity
        self.listeners = listeners
        self.own = own
        self.watch = ClientWatch()
        #: called with each finished record (access log, tests)
        self.on_record: list[Callable[[Record], None]] = []
        #: called with each answered flow and its record (the UI annotation)
        self.on_flow_record: list[Callable[[http.HTTPFlow, Record], None]] = []
        self.in_flight: set[asyncio.Task[Any]] = set()
        self.streams = StreamedReplies(
            self.watch, lambda: self.pipeline.stats, self._finish_stream, self.in_flight
        )
        #: WebSocket handshakes, when the proxy's upstream client can hand them over
        self.websockets: WebSockets | None = None

    def running(self) -> None:
        """Bodies stream only where mitmproxy was patched to send them so; else replies are
        buffered whole, as before streaming existed."""
        self.pipeline.services.streaming = patches.is_applied(
            "stream.start"
        ) and patches.is_applied("layer.inject_body")

    def done(self) -> None:
        self.watch.stop()

    # -- the hook ------------------------------------------------------------------------

    async def request(self, flow: http.HTTPFlow) -> None:
        """Every path ends in a chaoskit reply or a killed flow, never in mitmproxy forwarding
        the request itself (see the module docstring)."""
        if flow.response is not None or flow.error is not None:
            return  # answered before us (the admin API, the body budget, a guard)
        try:
            await self._request(flow)
        except Exception:
            logger.exception("chaoskit core error while answering %s", _safe_target(flow))
        finally:
            if flow.response is None and flow.error is None and not handed_over(flow):
                responses.fail_closed(flow)

    async def _request(self, flow: http.HTTPFlow) -> None:
        task = asyncio.current_task()
        assert task is not None  # mitmproxy runs every hook in a task of its own
        self.in_flight.add(task)
        listener = self.listeners.listener_of(flow)
        ex: Exchange | None = None
        reply: Reply | None
        try:
            http2_trailers.take(flow)  # for an HTTP/2 upstream (chaoskit.proxy.http2_trailers)
            trusted = from_self(flow, self.own)
            authority = request_authority(flow)
            ex = self.exchange(flow, listener, trust_hops=trusted, authority=authority)
            violation = protocol_violation(flow, authority)
            if violation is not None:
                reply = violation
            elif trusted and (listener.is_mesh or not ex.hops):
                reply = self.pipeline.loops.from_self(ex)
            elif self.websockets is not None and self.websockets.is_upgrade(flow):
                outcome = await self.websockets.handshake(flow, ex, self._handle)
                if isinstance(outcome, HandedOver):
                    return  # mitmproxy connects and relays; recorded when the socket ends
                reply = outcome
            else:
                reply = await self._handle(flow, ex)
        except Exception as e:  # fail closed: never let the flow through untouched
            reply = _internal_error(ex, e, "")
        finally:
            self.in_flight.discard(task)
        if reply is None:  # the client went away: everything was cancelled, nothing to send
            assert ex is not None
            self._record(flow, ex, replies.client_gone(), client_gone=True)
            flow.kill()
            return
        sent = self._respond(flow, ex, reply, listener)
        if reply.stream is not None and sent is not reply:  # its reply could not be sent
            reply.stream.close()
        if ex is None:
            return
        if sent.stream is not None and flow.response is not None:
            response_stream.start(flow.response)
            self.streams.start(flow, ex, sent)  # recorded when the body has ended
        else:
            self._record(flow, ex, sent)

    async def _handle(self, flow: http.HTTPFlow, ex: Exchange) -> Reply | None:
        """The pipeline's reply, or ``None`` when the client went away first."""
        clock = self.pipeline.clock

        def gone() -> None:
            ex.client_gave_up(clock.monotonic())

        reply, client_gone = await self.watch.run(flow, self.pipeline.handle(ex), gone)
        return None if client_gone else reply

    # -- translating ---------------------------------------------------------------------

    def exchange(
        self,
        flow: http.HTTPFlow,
        listener: Listener,
        *,
        trust_hops: bool,
        authority: str | None = None,
    ) -> Exchange:
        """The flow as the request path sees it. ``x-chaoskit-hops`` counts only on a
        connection chaoskit opened itself (``trust_hops``): only chaoskit sets it."""
        req = flow.request
        kept = [
            (k, v) for k, v in req.headers.items(multi=True)
            if trust_hops or k.lower() != HOPS_HEADER
        ]  # fmt: skip
        info = self.request_info(flow, listener, kept, authority)
        ex = self.pipeline.new_exchange(info, kept, req.raw_content or b"", listener)
        if req.http_version != "HTTP/1.1":
            ex.protocol = _PROTOCOLS.get(req.http_version, req.http_version)
        if (
            not info.source.name
            and listener.is_mesh
            and self.pipeline.snapshot.mesh.workloads_by_name
        ):
            ex.notes.append(UNNAMED_CALLER)
        return ex

    def request_info(
        self,
        flow: http.HTTPFlow,
        listener: Listener,
        headers: list[tuple[str, str]],
        authority: str | None = None,
    ) -> RequestInfo:
        req = flow.request
        scheme = req.scheme or "http"
        if authority is None:
            authority = request_authority(flow)
        default_port = req.port if listener.is_mesh else (443 if scheme == "https" else 80)
        _, port = split_authority(authority, default_port)
        joined: dict[str, str] = {}
        for k, v in headers:
            key = k.lower()
            joined[key] = f"{joined[key]},{v}" if key in joined else v
        # a workload's own listener says who is calling, as a sidecar knows its pod
        name = self.listeners.workload_of(flow) or self.identity.name(
            flow.client_conn.id, joined.get("proxy-authorization")
        )
        path, _, query = req.path.partition("?")
        return RequestInfo(
            method=req.method,
            scheme=scheme,
            authority=authority,
            path=path or "/",
            query=query,
            headers=joined,
            port=port,
            source=workload(self.pipeline.snapshot.mesh, name),
            client_address=flow.client_conn.peername[0] if flow.client_conn.peername else "",
        )

    def _respond(
        self, flow: http.HTTPFlow, ex: Exchange | None, reply: Reply, listener: Listener
    ) -> Reply:
        """Turn the reply into ``flow.response``. A reply that cannot be sent as it is (a
        header copied from the request with bytes that are not latin-1, a body a gRPC
        conversion cannot carry) becomes the internal-error reply, which always can."""
        try:
            if "application/grpc" in flow.request.headers.get("content-type", ""):
                reply = replies.as_grpc(reply)
            flow.response = responses.to_response(flow, reply, listener)
            return reply
        except Exception as e:
            fallback = _internal_error(ex, e, "reply: ")
            try:
                flow.response = responses.to_response(flow, fallback, listener)
            except Exception:  # the request still gets its record, whatever the client got
                responses.fail_closed(flow)
                if ex is not None and flow.response is None:
                    ex.notes.append("chaoskit internal error: no reply could be sent; dropped")
            return fallback

    def _finish_stream(
        self, flow: http.HTTPFlow, ex: Exchange, reply: Reply, client_gone: bool
    ) -> None:
        self._record(flow, ex, reply, client_gone=client_gone)

    def _record(
        self, flow: http.HTTPFlow, ex: Exchange, reply: Reply, *, client_gone: bool = False
    ) -> None:
        """Record the request; a failure here is logged, and the reply still goes out."""
        try:
            record = self.pipeline.finish(ex, reply, client_gone=client_gone)
            for flow_callback in self.on_flow_record:
                flow_callback(flow, record)
            for callback in self.on_record:
                callback(record)
        except Exception:
            logger.exception("chaoskit could not record request %s", ex.request_id)

    # -- for addons that answer before the enforcer ---------------------------------------

    def refuse(self, flow: http.HTTPFlow, reply: Reply, note: str | None = None) -> None:
        """Answer ``flow`` with ``reply`` now, recorded like every reply of the request path
        (with ``note``): how an earlier addon (the body budget) refuses a request."""
        listener = self.listeners.listener_of(flow)
        ex = self.exchange(flow, listener, trust_hops=False)
        ex.body = b""  # not read: the request was refused before its body
        if note:
            ex.notes.append(note)
        self._record(flow, ex, self._respond(flow, ex, reply, listener))

    def record_unanswered(self, flow: http.HTTPFlow, reply: Reply, note: str) -> None:
        """Record ``flow`` as ended by ``reply`` (status 0: nothing sent) with ``note``: a
        request mitmproxy's HTTP/2 layer refused before any hook (extended CONNECT)."""
        ex = self.exchange(flow, self.listeners.listener_of(flow), trust_hops=False)
        ex.notes.append(note)
        self._record(flow, ex, reply)
