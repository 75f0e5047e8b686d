"""ChaosCore: chaoskit's addons, one per concern, registered in order by mitmproxy itself."""

from __future__ import annotations

import asyncio

from mitmproxy.test import taddons, tflow

from chaoskit.proxy.annotate import FlowAnnotator
from chaoskit.proxy.budget_guard import BodyBudgetGuard
from chaoskit.proxy.core import ChaosCore, default_addons
from chaoskit.proxy.enforcer import Enforcer
from chaoskit.proxy.h2c import PriorKnowledge
from chaoskit.proxy.identity import CallerIdentity
from chaoskit.proxy.limits import DownstreamLimits
from chaoskit.proxy.options import ChaosOptions
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.tunnels import TunnelScope
from chaoskit.proxy.upstream import UpstreamClient
from chaoskit.proxy.websocket_relay import WebSockets
from chaoskit.rng import Seeds


def test_the_addons_run_in_order_identity_before_tunnels_before_the_enforcer() -> None:
    core = ChaosCore()
    kinds = [type(a) for a in core.addons]
    assert kinds == [
        ChaosOptions, CallerIdentity, TunnelScope, PriorKnowledge, Enforcer,
        WebSockets,
    ]  # fmt: skip
    assert core.enforcer.websockets is core.websockets


def test_websockets_are_handed_over_only_by_a_client_that_can() -> None:
    core = ChaosCore(Pipeline(Seeds(1), UpstreamClient()))
    assert core.websockets is None and core.enforcer.websockets is None
    assert WebSockets not in [type(a) for a in core.addons]


def test_mitmproxy_registers_every_nested_addon_and_chaoskits_options() -> None:
    core = ChaosCore()

    async def run() -> None:
        with taddons.context(core) as tctx:
            chain = list(tctx.master.addons.lookup.values())
            for addon in core.addons:
                assert addon in chain
            assert "chaoskit_config" in tctx.options and "chaoskit_seed" in tctx.options
            tctx.configure(core.options, chaoskit_seed="42")
            assert core.pipeline.seeds.seed == 42

    asyncio.run(run())  # inside a running loop: taddons would otherwise make its own


def test_default_addons_put_admin_limits_and_budget_before_the_core() -> None:
    core = ChaosCore()
    admin = object()
    addons = default_addons(core, admin=admin)
    assert addons[0] is admin and addons[-1] is core
    assert [type(a) for a in addons[1:3]] == [DownstreamLimits, BodyBudgetGuard]
    assert [type(a) for a in default_addons(core)[:2]] == [DownstreamLimits, BodyBudgetGuard]


def test_flows_are_annotated_only_when_asked() -> None:
    core = ChaosCore(annotate=False)
    assert core.annotator is None and core.enforcer.on_flow_record == []
    core.annotate = True
    assert isinstance(core.annotator, FlowAnnotator)
    assert core.enforcer.on_flow_record == [core.annotator.annotate]
    core.annotate = False
    assert core.enforcer.on_flow_record == []


def test_a_flow_answered_before_the_enforcer_is_left_alone() -> None:
    core = ChaosCore()
    flow = tflow.tflow(resp=True)  # e.g. the admin API or the body budget answered it
    before = flow.response

    async def run() -> None:
        with taddons.context(core):
            await core.enforcer.request(flow)

    asyncio.run(run())
    assert flow.response is before and core.pipeline.records.total == 0
