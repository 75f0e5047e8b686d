"""Helpers for testing with chaoskit (the way mitmproxy ships ``mitmproxy.test``): a real
misbehaving HTTP server (:class:`Upstream`), and for socket-free tests of the request path a
scripted upstream (:class:`FakeUpstream`), a fake clock and sleep (:class:`FakeClock`,
:class:`FakeSleep`)."""

from chaoskit.testing.clock import FakeClock, FakeSleep
from chaoskit.testing.fake_upstream import FakeBody, FakeUpstream, SentRequest, streamed
from chaoskit.testing.upstream import ReceivedRequest, Upstream

__all__ = [
    "FakeBody",
    "FakeClock",
    "FakeSleep",
    "FakeUpstream",
    "ReceivedRequest",
    "SentRequest",
    "Upstream",
    "streamed",
]
