"""WebSocket through the mesh: the handshake routed like any request, the socket relayed by
mitmproxy, its faults acted out, and one record when it ends.

1. **Handshake** (:meth:`WebSockets.handshake`, called by the enforcer for a request with
   ``Upgrade: websocket``): the request path runs as for any request — routing, the fault
   filter (a VirtualService abort answers its status instead of ``101``, a delay delays the
   handshake), circuit breakers, the endpoint, UpstreamFault (``abort`` refuses the upgrade,
   ``delay`` delays it, ``reset: {after: connect}`` is a connect failure) — and the attempt that
   would be sent is handed over instead (:mod:`chaoskit.proxy.websocket_handoff`): the flow is
   pointed at the chosen endpoint with the attempt's path and headers, :class:`TunnelScope`
   allows that one upstream connection, and mitmproxy sends the handshake and, after the
   upstream's ``101``, relays the frames (its ``WebsocketLayer``).
2. **Socket**: the ``webSocket`` UpstreamFault action selected for the handshake attempt
   (:mod:`chaoskit.faults.actions.websocket`) holds each message ``messageDelay`` before it is
   relayed (later messages wait their turn: order is kept), and closes or drops the socket
   after N messages or a time (:mod:`chaoskit.proxy.websocket_cut`).
3. **Record**: one per WebSocket, written when it ends (``websocket_end``), not at the ``101``:
   status 101, its whole duration, messages and payload bytes each way
   (:class:`~chaoskit.records.WebSocketSummary`), and who ended it — flag ``DC`` (the client),
   ``UC`` (the upstream, or an UpstreamFault acting as the upstream). A refused upgrade is
   recorded with the upstream's status; an endpoint that cannot be reached with ``UF`` and the
   502 mitmproxy answers then.

Envoy proxies an upgraded connection as opaque bytes after the handshake: no route timeout or
retries apply to the socket (envoy docs/root/intro/arch_overview/websocket.rst).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from mitmproxy import http
from mitmproxy.connection import ConnectionState

from chaoskit.faults.actions.websocket import FaultWebSocket, is_websocket_upgrade, socket_faults
from chaoskit.proxy import websocket_handoff
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.responses import header_bytes
from chaoskit.proxy.tunnels import TunnelScope
from chaoskit.proxy.websocket_cut import cut
from chaoskit.proxy.websocket_handoff import Target
from chaoskit.records import AttemptOutcome, Record, ResponseFlag, WebSocketSummary

logger = logging.getLogger("chaoskit")

#: ``flow.metadata`` key of a handshake handed over to mitmproxy (no chaoskit reply follows).
HANDED_OVER = "chaoskit.websocket"
#: What a client reports for a connection that ended without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE = 1006
#: The latest messages a WebSocket flow keeps (what a UI shows); older ones are let go.
KEPT_MESSAGES = 100


class HandedOver:
    """The handshake goes to the chosen endpoint through mitmproxy: nothing to answer now."""


def handed_over(flow: http.HTTPFlow) -> bool:
    return bool(flow.metadata.get(HANDED_OVER))


@dataclasses.dataclass(slots=True)
class Socket:
    """One handed-over handshake, then its WebSocket, until its record is written."""

    ex: Exchange
    client_id: str
    faults: FaultWebSocket | None
    #: the handshake attempt was cut after its headers (``reset: {after: headers}``)
    drop_at_start: bool = False
    summary: WebSocketSummary = dataclasses.field(default_factory=WebSocketSummary)
    #: the close code an UpstreamFault ended it with (ABNORMAL_CLOSURE when dropped)
    cut_code: int | None = None
    timer: asyncio.TimerHandle | None = None

    @property
    def relayed(self) -> int:
        return self.summary.messages_from_client + self.summary.messages_to_client


class WebSockets:
    """The mitmproxy addon for WebSocket upgrades (see the module docstring)."""

    def __init__(
        self,
        pipeline: Pipeline,
        tunnels: TunnelScope,
        on_record: list[Callable[[Record], None]],
        on_flow_record: list[Callable[[http.HTTPFlow, Record], None]],
    ) -> None:
        self.pipeline = pipeline
        self.tunnels = tunnels
        self.on_record = on_record
        self.on_flow_record = on_flow_record
        #: flow id → its socket, from the handover until the record
        self.sockets: dict[str, Socket] = {}

    # -- the handshake (called by the enforcer) ----------------------------------------------

    @staticmethod
    def is_upgrade(flow: http.HTTPFlow) -> bool:
        """An HTTP/1.1 ``GET`` asking for a WebSocket (HTTP/2's extended CONNECT is not)."""
        req = flow.request
        if req.method != "GET" or req.http_version != "HTTP/1.1":
            return False
        return is_websocket_upgrade(
            {name: ",".join(req.headers.get_all(name)) for name in ("upgrade", "connection")}
        )

    async def handshake(
        self,
        flow: http.HTTPFlow,
        ex: Exchange,
        handle: Callable[[http.HTTPFlow, Exchange], Awaitable[Reply | None]],
    ) -> Reply | HandedOver | None:
        """The request path's reply for a handshake it refused (or ``None``: the client went
        away), else the handover: the flow now goes to the endpoint the path chose."""
        handoff, token = websocket_handoff.start()
        try:
            reply = await handle(flow, ex)
        finally:
            websocket_handoff.end(token)
        target = handoff.target
        if reply is None or target is None or reply.status != 101:
            return reply
        self._hand_over(flow, ex, target, drop_at_start=reply.cut)
        return HandedOver()

    def _hand_over(
        self, flow: http.HTTPFlow, ex: Exchange, target: Target, *, drop_at_start: bool
    ) -> None:
        req = flow.request
        upgrade = ",".join(req.headers.get_all("upgrade"))
        req.scheme = target.scheme
        req.data.host = target.address  # not req.host: that rewrites the Host header too
        req.data.port = target.port
        req.path = target.path
        # The attempt's headers (route operations, host rewrite, x-request-id, the hop count)
        # lost the hop-by-hop pair that asks for the upgrade: it goes on to the endpoint.
        fields = [*target.headers, ("connection", "Upgrade"), ("upgrade", upgrade)]
        req.headers = http.Headers([(header_bytes(k), header_bytes(v)) for k, v in fields])
        self.tunnels.allow_upgrade(flow.client_conn.id, (target.address, target.port))
        names = ex.attempts[-1].faults if ex.attempts else ()
        faults = socket_faults(names, self.pipeline.services.mesh.upstream_faults)
        self.sockets[flow.id] = Socket(ex, flow.client_conn.id, faults, drop_at_start)
        flow.metadata[HANDED_OVER] = True
        self.pipeline.stats.inc("http.downstream_cx_upgrades_total")  # Envoy's HCM counter

    # -- mitmproxy hooks ---------------------------------------------------------------------

    def response(self, flow: http.HTTPFlow) -> None:
        """The upstream's answer to the handshake: a socket follows a 101; any other answer
        refused the upgrade and is the request's record."""
        sock = self.sockets.get(flow.id)
        if sock is None or flow.response is None or flow.websocket is not None:
            return
        status = flow.response.status_code
        self._fix_attempt(sock.ex, status, AttemptOutcome.RESPONSE)
        body = flow.response.raw_content or b""
        self._finish(flow, sock, Reply(status, body=body, local=False), sent=len(body))

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        sock = self.sockets.get(flow.id)
        if sock is None:
            return
        if sock.drop_at_start:
            self._cut(flow, sock, None, "right after the 101 (reset after headers)")
            return
        close = sock.faults.close if sock.faults is not None else None
        if close is not None and close.after is not None:
            loop = asyncio.get_running_loop()
            why = f"after {close.after:g}s"
            sock.timer = loop.call_later(close.after, self._cut, flow, sock, close.code, why)

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        sock = self.sockets.get(flow.id)
        if sock is None or flow.websocket is None:
            return
        messages = flow.websocket.messages
        message = messages[-1]
        if len(messages) > KEPT_MESSAGES:  # mitmproxy keeps them all: memory stays flat
            del messages[:-KEPT_MESSAGES]
        if sock.cut_code is not None:  # ended already: nothing more is relayed
            message.drop()
            return
        close = sock.faults.close if sock.faults is not None else None
        limit = close.after_messages if close is not None else None
        if limit is not None and sock.relayed >= limit:
            message.drop()
            assert close is not None
            self._cut(flow, sock, close.code, f"after {limit} messages")
            return
        size = len(message.content)
        s = sock.summary
        if message.from_client:
            sock.summary = dataclasses.replace(
                s, messages_from_client=s.messages_from_client + 1,
                bytes_from_client=s.bytes_from_client + size,
            )  # fmt: skip
        else:
            sock.summary = dataclasses.replace(
                s, messages_to_client=s.messages_to_client + 1,
                bytes_to_client=s.bytes_to_client + size,
            )  # fmt: skip
        if sock.faults is not None and sock.faults.message_delay:
            await self.pipeline.services.sleep(sock.faults.message_delay)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        sock = self.sockets.get(flow.id)
        if sock is None or flow.websocket is None:
            return
        ws = flow.websocket
        code: int | None
        if sock.cut_code is not None:
            closed_by, code, flag = "fault", sock.cut_code, ResponseFlag.UC
        elif ws.closed_by_client:
            closed_by, code, flag = "client", ws.close_code, ResponseFlag.DC
        else:
            closed_by, code, flag = "upstream", ws.close_code, ResponseFlag.UC
        sock.ex.flags.add(flag)
        sock.summary = dataclasses.replace(sock.summary, closed_by=closed_by, close_code=code)
        self._finish(flow, sock, Reply(101, local=False))

    def error(self, flow: http.HTTPFlow) -> None:
        """The handshake never got an answer: the endpoint could not be reached (the client
        got mitmproxy's 502), or the client went away first."""
        sock = self.sockets.get(flow.id)
        if sock is None or flow.websocket is not None:
            return
        message = flow.error.msg if flow.error is not None else ""
        if not flow.client_conn.state & ConnectionState.CAN_READ:
            self._fix_attempt(sock.ex, None, AttemptOutcome.CLIENT_GONE)
            self._finish(flow, sock, Reply(0, local=False), client_gone=True)
            return
        self._fix_attempt(sock.ex, None, AttemptOutcome.CONNECT_FAILURE)
        sock.ex.notes.append(f"WebSocket handshake to {sock.ex.upstream_host}: {message}")
        self.pipeline.stats.cluster_inc(sock.ex.cluster, "upstream_cx_connect_fail")
        reply = Reply(
            502, flags=(ResponseFlag.UF,),
            details="upstream_reset_before_response_started{connection_failure}",
        )  # fmt: skip
        self._finish(flow, sock, reply)

    # -- the socket's end --------------------------------------------------------------------

    def _cut(self, flow: http.HTTPFlow, sock: Socket, code: int | None, why: str) -> None:
        if sock.cut_code is not None or flow.id not in self.sockets:
            return
        sock.cut_code = code if code is not None else ABNORMAL_CLOSURE
        how = f"closed with code {code}" if code is not None else "dropped (no close frame)"
        sock.ex.notes.append(f"WebSocket {how} by UpstreamFault {why}")
        self.pipeline.stats.inc("upstream_fault.websocket_closed")
        cut(flow, code)

    @staticmethod
    def _fix_attempt(ex: Exchange, status: int | None, outcome: AttemptOutcome) -> None:
        """The handed-over attempt's record says what the upstream really did (it was
        recorded as the 101 the handoff stood in for)."""
        if ex.attempts:
            last = ex.attempts[-1]
            ex.attempts[-1] = dataclasses.replace(last, status=status, outcome=outcome)

    def _finish(
        self,
        flow: http.HTTPFlow,
        sock: Socket,
        reply: Reply,
        *,
        sent: int | None = None,
        client_gone: bool = False,
    ) -> None:
        """Write the socket's record once and forget the socket. As :meth:`Pipeline.finish`
        writes a request's, with the bytes of the socket's messages instead of bodies."""
        if self.sockets.pop(flow.id, None) is None:
            return
        if sock.timer is not None:
            sock.timer.cancel()
        try:
            record = self._record(sock, reply, sent=sent, client_gone=client_gone)
            for flow_callback in self.on_flow_record:
                flow_callback(flow, record)
            for callback in self.on_record:
                callback(record)
        except Exception:
            logger.exception("chaoskit could not record WebSocket %s", sock.ex.request_id)

    def _record(self, sock: Socket, reply: Reply, *, sent: int | None, client_gone: bool) -> Record:
        p = self.pipeline
        now = p.clock.monotonic()
        record = sock.ex.to_record(reply, p.records.next_seq(), now, client_gone=client_gone)
        if reply.status == 101:
            s = sock.summary
            record = dataclasses.replace(
                record, bytes_received=s.bytes_from_client, bytes_sent=s.bytes_to_client,
                websocket=s,
            )  # fmt: skip
        elif sent is not None:
            record = dataclasses.replace(record, bytes_sent=sent)
        p.records.append(record)
        p.stats.inc("http.downstream_rq_total")
        if reply.status:
            p.stats.inc(f"http.downstream_rq_{reply.status // 100}xx")
        if client_gone:
            p.stats.inc("http.downstream_rq_client_gone")
        return record
