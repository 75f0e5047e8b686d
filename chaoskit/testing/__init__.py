"""Helpers for testing with chaoskit (the way mitmproxy ships ``mitmproxy.test``)."""

from chaoskit.testing.upstream import ReceivedRequest, Upstream

__all__ = ["ReceivedRequest", "Upstream"]
