"""Request loops: a destination that is this proxy itself.

An endpoint (or passthrough destination, or mirror) that is one of this proxy's own listeners
would send the request round again. The forward-proxy listener, the admin listener and the web
UI are never valid destinations (``502`` with Envoy's loop reply at once); a Gateway listener is
(Istio's egress-gateway pattern), so such a hop carries ``x-chaoskit-hops`` and the request is
refused once it has passed through the proxy's own listeners :data:`MAX_HOPS` times. The header
never reaches other upstreams (it is in the set :mod:`chaoskit.proxy.forwarding` strips).

Addresses are compared as IPs however they are spelled (:mod:`chaoskit.proxy.addresses`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

from chaoskit.proxy import replies
from chaoskit.proxy.addresses import reaches
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.replies import Reply
from chaoskit.stats import Stats

#: Added when chaoskit forwards to one of its own listeners: how many such hops so far.
HOPS_HEADER = "x-chaoskit-hops"
#: Passes through the proxy's own listeners one request may make (the egress-gateway pattern
#: needs one; a loop is refused on the hop after this many).
MAX_HOPS = 8
#: Envoy's counter for a request refused as a loop.
LOOP_STAT = "http.downstream_rq_loop"


class ListenerKind(enum.StrEnum):
    """What one of this proxy's own listening sockets serves."""

    #: the forward proxy (the callers' sidecar)
    MESH = "mesh"
    #: a Gateway server port (ingress or egress): the one kind a request may be sent to
    GATEWAY = "gateway"
    #: the admin API
    ADMIN = "admin"
    #: mitmweb's UI
    WEB = "web"
    #: any other listener a mitmdump user added
    PROXY = "proxy"

    @property
    def described(self) -> str:
        return _DESCRIBED.get(self, str(self))


_DESCRIBED = {
    ListenerKind.MESH: "forward-proxy",
    ListenerKind.ADMIN: "admin",
    ListenerKind.WEB: "web UI",
}
#: Kinds of own listener a request may be forwarded to (Istio's egress-gateway pattern).
HOP_KINDS = frozenset({ListenerKind.GATEWAY})
#: ``(host, port) → kind`` for every address the proxy listens on.
OwnListeners = Mapping[tuple[str, int], ListenerKind]


class LoopGuard:
    """Knows the proxy's own listeners and refuses destinations among them."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        #: Asked on every check: the addresses the proxy listens on (the mitmproxy side sets
        #: this; without a running proxy there are none).
        self.own_listeners: Callable[[], OwnListeners] = dict

    def own_listener(self, address: str, port: int) -> ListenerKind | None:
        """The kind of own listener that ``address:port`` reaches, or ``None``."""
        for (host, bound_port), kind in self.own_listeners().items():
            if bound_port == port and reaches(address, host):
                return kind
        return None

    def refuse(self, ex: Exchange, why: str) -> Reply:
        ex.notes.append(f"request loop: {why}; refused")
        self.stats.inc(LOOP_STAT)
        return replies.request_loop()

    def at_forward_proxy(self, ex: Exchange) -> Reply | None:
        """Only chaoskit sets the hop header, and only towards its Gateway listeners: a request
        that reached the forward proxy with it went round in a circle."""
        if ex.hops and ex.listener.is_mesh:
            return self.refuse(ex, "forwarded back to this proxy's own forward-proxy listener")
        return None

    def from_self(self, ex: Exchange) -> Reply:
        """A request that arrived over one of this proxy's own outgoing connections without
        the hop count chaoskit adds when it knowingly forwards to its own Gateway listener: a
        loop no address check recognised. Refused, whatever headers it carries."""
        where = "forward-proxy" if ex.listener.is_mesh else "Gateway"
        return self.refuse(
            ex,
            f"arrived at this proxy's own {where} listener over one of its own upstream "
            "connections",
        )

    def check(
        self, ex: Exchange, address: str, port: int
    ) -> tuple[Reply | None, list[tuple[str, str]]]:
        """Refuse a destination that is this proxy itself, or give the hop header to send."""
        kind = self.own_listener(address, port)
        if kind is None:
            return None, []
        if kind not in HOP_KINDS:
            return self.refuse(
                ex, f"{address}:{port} is this proxy's own {kind.described} listener"
            ), []
        hops = ex.hops + 1
        if hops > MAX_HOPS:
            why = f"passed through this proxy's own listeners {ex.hops} times (at most {MAX_HOPS})"
            return self.refuse(ex, why), []
        return None, [(HOPS_HEADER, str(hops))]

    def mirror_hop(self, ex: Exchange, address: str, port: int) -> list[tuple[str, str]] | None:
        """The hop header for a mirror copy to ``address:port``, or ``None`` when the copy
        would loop (it is skipped, never refused: a mirror's result is discarded anyway)."""
        kind = self.own_listener(address, port)
        if kind is None:
            return []
        if kind not in HOP_KINDS or ex.hops + 1 > MAX_HOPS:
            return None
        return [(HOPS_HEADER, str(ex.hops + 1))]
