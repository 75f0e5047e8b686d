"""A ``websockets`` client through the ``chaos`` fixture of this very test run: a fault on the
socket fires, and ``chaos.records`` has the socket's record once it ended."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chaoskit_pytest.handle import Chaos
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from chaoskit.testing import EchoServer
from tests.builders import service_entry


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer("chat") as server:
        yield server


def test_a_socket_fault_fires_and_the_record_says_so(chaos: Chaos, echo: EchoServer):
    chaos.apply(service_entry("chat", echo.port))
    chaos.fault("chat", websocket={"close": {"afterMessages": 0}})
    with connect("ws://chat/", proxy=chaos.url, open_timeout=10) as ws:
        ws.send("hello")  # the first message ends the socket: it is not relayed
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=5)
    (record,) = chaos.records.where(host="chat")
    assert record.status == 101 and "UC" in record.flags
    assert record.websocket is not None and record.websocket.closed_by == "fault"
    assert record.attempts[0].faults == ("UpstreamFault/default/chat-fault-1:webSocket",)
    assert echo.messages == 0
