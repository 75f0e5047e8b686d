"""Headers sent upstream: hop-by-hop and chaoskit's own never pass through from the client."""

from __future__ import annotations

from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.forwarding import hop_by_hop, relay, upstream_headers, with_host
from chaoskit.proxy.upstream import UpstreamResponse
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.router import Listener


def test_headers_named_by_connection_and_chaoskits_own_are_dropped() -> None:
    request = RequestInfo("GET", "https", "x", "/", port=443)
    ex = Exchange(request, [], b"", Listener.mesh(), 0.0, 0.0, request_id="rid")
    client = [
        ("Connection", "keep-alive, X-Secret"), ("x-secret", "s"), ("X-Request-Id", "forged"),
        ("x-envoy-attempt-count", "9"), ("x-chaoskit-hops", "0"), ("te", "trailers"),
        ("accept", "*/*"),
    ]  # fmt: skip
    assert "x-secret" in hop_by_hop(client)
    out = upstream_headers(ex, client, attempt=2)
    assert out == [("accept", "*/*"), ("x-request-id", "rid"), ("x-forwarded-proto", "https"),
                   ("x-envoy-attempt-count", "2")]  # fmt: skip
    assert with_host([("Host", "a"), ("b", "1")], "svc") == [("b", "1"), ("host", "svc")]


def test_a_relayed_answer_gets_its_length_and_the_upstream_service_time() -> None:
    reply = relay(UpstreamResponse(201, "Created", (("a", "1"),), b"abc"), 0.0429)
    assert reply.headers == (("a", "1"), ("content-length", "3"),
                             ("x-envoy-upstream-service-time", "42"))  # fmt: skip
    assert (reply.status, reply.reason, reply.local) == (201, "Created", False)
