"""Helpers for testing with chaoskit (the way mitmproxy ships ``mitmproxy.test``): real
misbehaving HTTP/1.1 and HTTP/2 servers (:class:`Upstream`, :class:`Http2Upstream`), and for
socket-free tests of the request path a scripted upstream (:class:`FakeUpstream`), a fake clock
and sleep (:class:`FakeClock`, :class:`FakeSleep`)."""

from chaoskit.testing.clock import FakeClock, FakeSleep
from chaoskit.testing.fake_upstream import FakeUpstream, SentRequest
from chaoskit.testing.http2_upstream import Http2Upstream
from chaoskit.testing.upstream import ReceivedRequest, Upstream

__all__ = [
    "FakeClock",
    "FakeSleep",
    "FakeUpstream",
    "Http2Upstream",
    "ReceivedRequest",
    "SentRequest",
    "Upstream",
]
