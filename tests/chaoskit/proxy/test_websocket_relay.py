"""The WebSocket addon without sockets: what a handshake is, and how a socket's messages are
counted, held back or refused by its fault, and recorded when it ends (mitmproxy's tflow)."""

from __future__ import annotations

import asyncio

from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode

from chaoskit.faults.actions.websocket import FaultWebSocket, SocketClose
from chaoskit.proxy import core
from chaoskit.proxy.websocket_relay import Socket, WebSockets
from chaoskit.records import Record
from chaoskit.routing.request import RequestInfo
from chaoskit.testing import FakeClock, FakeSleep


def relay_with(faults: FaultWebSocket | None) -> tuple[WebSockets, list[Record], object]:
    chaos = core.ChaosCore()
    relay = chaos.websockets
    assert relay is not None
    seen: list[Record] = []
    relay.on_record.append(seen.append)
    flow = tflow.twebsocketflow(messages=False)
    info = RequestInfo(method="GET", scheme="http", authority="chat", path="/ws", port=80)
    ex = chaos.pipeline.new_exchange(info, [], b"")
    relay.sockets[flow.id] = Socket(ex, flow.client_conn.id, faults)
    return relay, seen, flow


def message(flow, text: bytes, from_client: bool) -> WebSocketMessage:
    msg = WebSocketMessage(Opcode.TEXT, from_client, text)
    flow.websocket.messages.append(msg)
    return msg


def test_what_a_handshake_is() -> None:
    flow = tflow.twebsocketflow()
    assert WebSockets.is_upgrade(flow)
    flow.request.headers["connection"] = "keep-alive"
    assert not WebSockets.is_upgrade(flow)  # an Upgrade header alone asks for nothing
    post = tflow.twebsocketflow()
    post.request.method = "POST"
    assert not WebSockets.is_upgrade(post)
    assert not WebSockets.is_upgrade(tflow.tflow())


def test_messages_are_counted_each_way_and_the_record_waits_for_the_end() -> None:
    relay, seen, flow = relay_with(None)
    for text, from_client in ((b"abc", True), (b"abc", False), (b"de", True)):
        message(flow, text, from_client)
        asyncio.run(relay.websocket_message(flow))
    assert seen == []
    flow.websocket.closed_by_client, flow.websocket.close_code = True, 1000
    relay.websocket_end(flow)
    (record,) = seen
    assert record.status == 101 and record.flags == ("DC",)
    assert (record.bytes_received, record.bytes_sent) == (5, 3)
    ws = record.websocket
    assert ws is not None and (ws.messages_from_client, ws.messages_to_client) == (2, 1)
    assert (ws.closed_by, ws.close_code) == ("client", 1000)
    assert relay.sockets == {}


def test_after_n_messages_the_next_is_refused_and_the_socket_ends_as_the_faults() -> None:
    relay, seen, flow = relay_with(FaultWebSocket(close=SocketClose(after_messages=1)))
    first = message(flow, b"a", True)
    asyncio.run(relay.websocket_message(flow))
    second = message(flow, b"b", False)
    asyncio.run(relay.websocket_message(flow))
    assert not first.dropped and second.dropped
    relay.websocket_end(flow)  # what mitmproxy reports once both connections are closed
    (record,) = seen
    assert record.flags == ("UC",)
    assert record.websocket is not None and record.websocket.closed_by == "fault"
    assert record.websocket.close_code == 1006  # dropped: no close frame
    assert any("dropped (no close frame)" in note for note in record.notes)


def test_a_message_delay_holds_each_message() -> None:
    relay, _, flow = relay_with(FaultWebSocket(message_delay=0.25))
    sleep = FakeSleep(FakeClock())
    relay.pipeline.services.sleep = sleep
    message(flow, b"a", True)
    asyncio.run(relay.websocket_message(flow))
    assert sleep.calls == [0.25]
