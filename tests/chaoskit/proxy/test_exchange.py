"""An Exchange becomes exactly one record, with nothing lost or invented."""

from __future__ import annotations

from chaoskit.proxy import replies
from chaoskit.proxy.exchange import Exchange, parse_hops, without_userinfo
from chaoskit.records import AttemptInFlight
from chaoskit.routing.request import RequestInfo, Workload
from chaoskit.routing.router import Listener


def test_the_record_carries_what_the_path_decided_and_cuts_a_running_attempt() -> None:
    request = RequestInfo(
        "GET", "http", "u:p@ratings:80", "/r", query="a=1", port=80,
        source=Workload(name="productpage"), headers={"user-agent": "t"},
    )  # fmt: skip
    ex = Exchange(request, [], b"xy", Listener.gateway(8080), 10.0, 1e9, request_id="rid")
    ex.flags.add("DI")
    ex.in_flight = AttemptInFlight(1, "127.0.0.1:1", 10.5, ("UpstreamFault/default/f:delay",))
    record = ex.to_record(replies.client_gone(), 7, 12.0, client_gone=True)
    assert (record.seq, record.listener, record.authority, record.path) == (
        7, "gateway:8080", "ratings:80", "/r?a=1"
    )  # fmt: skip
    assert (record.status, record.flags, record.duration) == (0, ("DC", "DI"), 2.0)
    (attempt,) = record.attempts
    assert (attempt.outcome, attempt.duration, attempt.faults) == (
        "client-gone", 1.5, ("UpstreamFault/default/f:delay",)
    )  # fmt: skip
    assert (record.bytes_received, record.user_agent, record.source) == (2, "t", "productpage")


def test_hop_counts_and_credentials() -> None:
    assert [parse_hops(v) for v in (None, "", "3", "-2", "x")] == [0, 0, 3, 0, 0]
    assert without_userinfo("a:b@h:1") == "h:1" and without_userinfo("h") == "h"
