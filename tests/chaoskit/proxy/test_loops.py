"""LoopGuard: own listeners are never destinations, except Gateways, a bounded number of times."""

from __future__ import annotations

from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.loops import HOPS_HEADER, LOOP_STAT, MAX_HOPS, ListenerKind, LoopGuard
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.router import Listener
from chaoskit.stats import Stats

OWN = {("0.0.0.0", 15001): ListenerKind.MESH, ("127.0.0.1", 8080): ListenerKind.GATEWAY,
       ("127.0.0.1", 15000): ListenerKind.ADMIN}  # fmt: skip


def guard() -> LoopGuard:
    g = LoopGuard(Stats())
    g.own_listeners = lambda: OWN
    return g


MESH = Listener.mesh()


def ex(hops: int = 0, listener: Listener = MESH) -> Exchange:
    request = RequestInfo("GET", "http", "x", "/", port=80)
    return Exchange(request, [], b"", listener, 0.0, 0.0, hops=hops)


def test_own_listeners_are_found_however_the_address_is_spelled() -> None:
    g = guard()
    assert g.own_listener("127.1", 15001) is ListenerKind.MESH  # 0.0.0.0 listens on all
    assert g.own_listener("0x7f000001", 8080) is ListenerKind.GATEWAY
    assert g.own_listener("127.0.0.1", 9999) is None


def test_the_forward_proxy_and_admin_are_refused_a_gateway_gets_a_hop_header() -> None:
    g = guard()
    e = ex()
    refusal, hop = g.check(e, "localhost", 15001)
    assert refusal is not None and refusal.status == 502 and hop == []
    assert e.notes == ["request loop: localhost:15001 is this proxy's own forward-proxy "
                       "listener; refused"]  # fmt: skip
    assert g.check(ex(), "127.0.0.1", 15000)[0] is not None
    assert g.check(ex(hops=2), "127.0.0.1", 8080) == (None, [(HOPS_HEADER, "3")])
    assert g.stats.get(LOOP_STAT) == 2


def test_a_request_is_refused_after_max_hops_and_a_mirror_is_skipped() -> None:
    g = guard()
    assert g.check(ex(hops=MAX_HOPS), "127.0.0.1", 8080)[0] is not None
    assert g.mirror_hop(ex(hops=MAX_HOPS), "127.0.0.1", 8080) is None
    assert g.mirror_hop(ex(), "127.0.0.1", 15001) is None
    assert g.mirror_hop(ex(), "127.0.0.1", 1) == []


def test_a_hop_count_arriving_at_the_forward_proxy_is_a_loop() -> None:
    g = guard()
    assert g.at_forward_proxy(ex(hops=1)) is not None
    assert g.at_forward_proxy(ex(hops=0)) is None
    assert g.at_forward_proxy(ex(hops=1, listener=Listener.gateway(8080))) is None
