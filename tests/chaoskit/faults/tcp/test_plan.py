"""Folding the TCP faults that fire for one connection into a ConnectionPlan."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.faults.plan import plan_attempt
from chaoskit.faults.selection import FaultStates
from chaoskit.faults.tcp.plan import NO_TCP_FAULT, ConnectionPlan, DirectionPlan, plan_connection
from chaoskit.faults.tcp.shaping import TcpSlicer
from chaoskit.rng import Seeds
from tests.chaoskit.faults.helpers import PAYMENTS, doc, faults, host, request

REF = "UpstreamFault/default/"
H = "host: payments\n"


class Run:
    """A fault config applied at t=0, with one seeded stream per fault."""

    def __init__(self, *specs: str, seed: int = 1) -> None:
        self.faults: Sequence[UpstreamFault] = faults(
            *(doc(s, f"f{i}") for i, s in enumerate(specs))
        )
        self.states = FaultStates()
        self.states.apply(self.faults, now=0.0)
        self.seeds = Seeds(seed)

    def connect(self, now: float = 1.0, fqdn: str = PAYMENTS) -> ConnectionPlan:
        return plan_connection(
            self.faults, self.states, host_fqdn=fqdn, subset=None, endpoint=host(),
            request=request(), now=now,
            rng_for=lambda ref: self.seeds.stream("upstreamfault/" + ref),
        )  # fmt: skip


def test_no_fault_for_another_host() -> None:
    run = Run(H + "latency: {fixedDelay: 100ms}")
    assert run.connect(fqdn="orders.default.svc.cluster.local") is NO_TCP_FAULT
    assert not NO_TCP_FAULT.injected


def test_latency_acts_on_its_stream_and_adds_up() -> None:
    plan = Run(
        H + "latency: {fixedDelay: 100ms}",  # downstream: Toxiproxy's default
        H + "latency: {fixedDelay: 50ms, stream: both}",
    ).connect()
    assert plan.downstream.latency == pytest.approx(0.15)
    assert plan.upstream.latency == 0.05
    assert plan.faults == (f"{REF}f0:latency", f"{REF}f1:latency")


def test_shaping_combines_with_one_ending_and_the_lowest_rate_wins() -> None:
    plan = Run(
        H + "bandwidth: {bytesPerSecond: 1000}\nlimitData: {bytes: 10, stream: upstream}",
        H + "bandwidth: {bytesPerSecond: 500}\nslicer: {averageSize: 4, delay: 1ms}",
    ).connect()
    assert plan.downstream == DirectionPlan(
        bytes_per_second=500, slicer=TcpSlicer(4, 0, 0.001, "downstream")
    )
    assert plan.upstream == DirectionPlan(limit_bytes=10)
    assert plan.upstream.cut_at == 10 and plan.downstream.cut_at is None
    assert plan.slicer_seed != 0


def test_the_first_ending_wins() -> None:
    plan = Run(H + "resetPeer: {after: 2s}", H + "timeout: {}").connect()
    assert (plan.reset_after, plan.blackhole) == (2.0, False)
    assert plan.faults == (f"{REF}f0:resetPeer",)


def test_reset_peer_forms() -> None:
    assert Run(H + "resetPeer: {}").connect().reset_after == 0.0
    by_bytes = Run(H + "resetPeer: {afterBytes: 5, stream: both}").connect()
    assert (by_bytes.reset_after, by_bytes.upstream.cut_at, by_bytes.downstream.cut_at) == (
        None, 5, 5,
    )  # fmt: skip
    timeout = Run(H + "timeout: {after: 3s}").connect()
    assert (timeout.blackhole, timeout.close_after) == (True, 3.0)


def test_selection_counts_connections_and_replays_with_the_seed() -> None:
    first = Run(H + "resetPeer: {}\nfirstN: 2")
    assert [first.connect().injected for _ in range(4)] == [True, True, False, False]
    draws = [Run(H + "latency: {fixedDelay: 1ms}\npercentage: {value: 50}", seed=s)
             for s in (3, 3, 4)]  # fmt: skip
    seqs = [[r.connect().injected for _ in range(40)] for r in draws]
    assert seqs[0] == seqs[1] != seqs[2]
    assert 10 < sum(seqs[0]) < 30


def test_a_sequence_step_applies_only_its_action() -> None:
    run = Run(H + "latency: {fixedDelay: 1ms}\nresetPeer: {}\nsequence: [resetPeer, latency, pass]")
    plans = [run.connect() for _ in range(4)]
    assert [p.faults for p in plans] == [
        (f"{REF}f0:resetPeer",), (f"{REF}f0:latency",), (), (),
    ]  # fmt: skip


def _attempt(run: Run) -> tuple[str, ...]:
    plan = plan_attempt(
        run.faults, run.states, host_fqdn=PAYMENTS, subset=None, endpoint=host(),
        request=request(), now=1.0, rng_for=run.seeds.stream,
    )  # fmt: skip
    return plan.faults


def test_http_and_tcp_faults_never_use_each_other_up() -> None:
    specs = (H + "abort: {httpStatus: 503}\nfirstN: 1", H + "resetPeer: {}\nfirstN: 1")
    # A connection first: it neither fires nor counts the HTTP fault...
    run = Run(*specs)
    assert run.connect().faults == (f"{REF}f1:resetPeer",)
    assert _attempt(run) == (f"{REF}f0:abort",)
    # ... and an HTTP attempt first neither fires nor counts the TCP one.
    run = Run(*specs)
    assert _attempt(run) == (f"{REF}f0:abort",)
    assert run.connect().faults == (f"{REF}f1:resetPeer",)
    assert run.connect() is NO_TCP_FAULT and _attempt(run) == ()
