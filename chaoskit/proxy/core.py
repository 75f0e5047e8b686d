"""``ChaosCore``: chaoskit as mitmproxy addons, one per concern, in the order they must run.

mitmproxy calls each hook on its addons in order, and an addon may carry its own ``addons``
(mitmproxy's ``AddonManager`` registers them after it, in list order). ``ChaosCore`` is that
container; what it holds, in order:

1. :class:`~chaoskit.proxy.options.ChaosOptions` — mitmproxy options, start and stop;
2. :class:`~chaoskit.proxy.identity.CallerIdentity` — who is calling (before anything routes);
3. :class:`~chaoskit.proxy.tunnels.TunnelScope` — which connections are intercepted, where
   tunnels go, and that mitmproxy opens no other upstream connection;
4. :class:`~chaoskit.proxy.h2c.PriorKnowledge` — a cleartext client that opens with the HTTP/2
   preface speaks HTTP/2 (gRPC through a ``CONNECT`` tunnel); then
5. :class:`~chaoskit.proxy.enforcer.Enforcer` — answers every HTTP request through the
   :class:`~chaoskit.proxy.pipeline.Pipeline`;
5. :class:`~chaoskit.proxy.websocket_relay.WebSockets` — a WebSocket handshake the enforcer
   routed and handed over: the socket's faults and its record (only when the pipeline's
   upstream client can hand over, :class:`~chaoskit.proxy.websocket_handoff.HandoffClient`);
6. :class:`~chaoskit.proxy.annotate.FlowAnnotator` — what a UI shows (only when one does).

The patches of mitmproxy internals these rely on (codec guards, body budget) are applied by
whoever starts mitmproxy (:mod:`chaoskit.proxy.patches`), not by constructing addons.
:func:`default_addons` is the whole ordered list, with the guards that must come first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from chaoskit.config.mesh import Mesh
from chaoskit.proxy.annotate import FlowAnnotator
from chaoskit.proxy.budget_guard import BodyBudgetGuard
from chaoskit.proxy.enforcer import Enforcer
from chaoskit.proxy.h2c import PriorKnowledge
from chaoskit.proxy.identity import CallerIdentity
from chaoskit.proxy.limits import DownstreamLimits
from chaoskit.proxy.listeners import ListenerTable
from chaoskit.proxy.options import ChaosOptions
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.tunnels import TunnelScope
from chaoskit.proxy.upstream import UpstreamClient
from chaoskit.proxy.websocket_handoff import HandoffClient
from chaoskit.proxy.websocket_relay import WebSockets
from chaoskit.records import Record
from chaoskit.rng import Seeds, new_seed


class ChaosCore:
    """chaoskit's addons sharing one pipeline (see the module docstring)."""

    def __init__(self, pipeline: Pipeline | None = None, *, annotate: bool = True) -> None:
        self.pipeline = pipeline or Pipeline(Seeds(new_seed()), HandoffClient())
        client = self.pipeline.client
        own = client.own_sockets if isinstance(client, UpstreamClient) else OwnSockets()
        self.listeners = ListenerTable()
        self.pipeline.loops.own_listeners = self.listeners.own_listeners
        self.options = ChaosOptions(self.pipeline)
        self.identity = CallerIdentity()
        self.tunnels = TunnelScope(self.pipeline, self.identity, own)
        self.enforcer = Enforcer(self.pipeline, self.identity, self.listeners, own)
        self.websockets: WebSockets | None = None
        if isinstance(client, HandoffClient):
            self.websockets = WebSockets(
                self.pipeline, self.tunnels, self.enforcer.on_record, self.enforcer.on_flow_record
            )
            self.enforcer.websockets = self.websockets
        self.annotator: FlowAnnotator | None = None
        #: mitmproxy registers these after this container, in this order
        self.addons: list[Any] = [
            self.options, self.identity, self.tunnels, PriorKnowledge(), self.enforcer,
        ]  # fmt: skip
        if self.websockets is not None:
            self.addons.append(self.websockets)
        self.annotate = annotate

    @property
    def annotate(self) -> bool:
        """Whether flows carry their record for a UI (:class:`FlowAnnotator`). Set before the
        addons are added to mitmproxy."""
        return self.annotator is not None

    @annotate.setter
    def annotate(self, on: bool) -> None:
        if on and self.annotator is None:
            self.annotator = FlowAnnotator()
            self.enforcer.on_flow_record.append(self.annotator.annotate)
        elif not on and self.annotator is not None:
            self.enforcer.on_flow_record.remove(self.annotator.annotate)
            self.annotator = None

    # What the Python API, the CLI and the admin API use.
    @property
    def on_record(self) -> list[Callable[[Record], None]]:
        return self.enforcer.on_record

    @property
    def in_flight(self) -> set[asyncio.Task[Any]]:
        return self.enforcer.in_flight

    @property
    def gateway_ports(self) -> dict[int, int]:
        """Bound port of each Gateway listener → the Gateway server port (from the YAML)."""
        return self.listeners.gateway_ports

    @gateway_ports.setter
    def gateway_ports(self, ports: dict[int, int]) -> None:
        self.listeners.gateway_ports = ports

    @property
    def workload_ports(self) -> dict[int, str]:
        """Bound port of each workload's own forward-proxy listener → the workload's name."""
        return self.listeners.workload_ports

    @workload_ports.setter
    def workload_ports(self, ports: dict[int, str]) -> None:
        self.listeners.workload_ports = ports

    def set_mesh(self, mesh: Mesh) -> None:
        self.pipeline.set_mesh(mesh)


def default_addons(
    core: ChaosCore,
    *,
    limits: DownstreamLimits | None = None,
    budget: BodyBudgetGuard | None = None,
    admin: Any = None,
) -> list[Any]:
    """chaoskit's addons in the order mitmproxy must call them: the admin API (it answers its
    own listener before anything else looks at a flow), the downstream limits (connection
    count, request-header timeout), the body budget (refuses before a body is buffered), then
    the core. Limits and budget with their defaults unless given."""
    limits = limits if limits is not None else DownstreamLimits(core.pipeline.stats)
    budget = budget if budget is not None else BodyBudgetGuard(core)
    return [*([admin] if admin is not None else []), limits, budget, core]
