"""Helpers for testing with chaoskit (the way mitmproxy ships ``mitmproxy.test``): real
misbehaving HTTP/1.1 and HTTP/2 servers (:class:`Upstream`, :class:`Http2Upstream`), a real
WebSocket echo server (:class:`EchoServer`), a real TCP echo server (:class:`TcpEcho`), and for
socket-free tests of the request path a scripted upstream (:class:`FakeUpstream`), a fake clock
and sleep (:class:`FakeClock`, :class:`FakeSleep`)."""

from chaoskit.testing.clock import FakeClock, FakeSleep
from chaoskit.testing.fake_upstream import FakeBody, FakeUpstream, SentRequest, streamed
from chaoskit.testing.http2_upstream import Http2Upstream
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
    "Http2Upstream",
    "ReceivedRequest",
    "SentRequest",
    "TcpEcho",
    "Upstream",
    "streamed",
]
