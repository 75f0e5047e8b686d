"""Helpers for testing with chaoskit (the way mitmproxy ships ``mitmproxy.test``): a real
misbehaving HTTP server (:class:`Upstream`), a real WebSocket echo server (:class:`EchoServer`),
a real TCP echo server (:class:`TcpEcho`), and for socket-free tests of the request path a
scripted upstream (:class:`FakeUpstream`), a fake clock and sleep (:class:`FakeClock`,
:class:`FakeSleep`)."""

from chaoskit.testing.clock import FakeClock, FakeSleep
from chaoskit.testing.fake_upstream import FakeBody, FakeUpstream, SentRequest, streamed
from chaoskit.testing.tcp_echo import TcpEcho
from chaoskit.testing.upstream import ReceivedRequest, Upstream
from chaoskit.testing.websocket_echo import EchoServer, Handshake

__all__ = [
    "EchoServer",
    "FakeBody",
    "FakeClock",
    "FakeSleep",
    "FakeUpstream",
    "Handshake",
    "ReceivedRequest",
    "SentRequest",
    "TcpEcho",
    "Upstream",
    "streamed",
]
