"""Folding the faults that hit one attempt into an AttemptPlan."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chaoskit.config.upstream_fault import FaultReset, UpstreamFault
from chaoskit.faults.actions.corrupt_body import corrupt
from chaoskit.faults.actions.truncate_body import truncate
from chaoskit.faults.body_point import BodyPoint
from chaoskit.faults.body_shaper import BodyShaper
from chaoskit.faults.plan import NO_FAULT, AbortResponse, AttemptPlan, plan_attempt
from chaoskit.faults.selection import FaultStates
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.rng import Seeds

from .helpers import PAYMENTS, doc, faults, host, request, rng

REF = "UpstreamFault/default/"


class Run:
    """A fault config applied at t=0, with one seeded stream per fault."""

    def __init__(self, *specs: str, seed: int = 1) -> None:
        self.faults: Sequence[UpstreamFault] = faults(
            *(doc(s, f"f{i}") for i, s in enumerate(specs))
        )
        self.states = FaultStates()
        self.states.apply(self.faults, now=0.0)
        self.seeds = Seeds(seed)

    def attempt(
        self, endpoint: UpstreamHost | None = None, now: float = 1.0, fqdn: str = PAYMENTS
    ) -> AttemptPlan:
        return plan_attempt(
            self.faults,
            self.states,
            host_fqdn=fqdn,
            subset=None,
            endpoint=endpoint or host(),
            request=request(),
            now=now,
            rng_for=lambda ref: self.seeds.stream("upstreamfault/" + ref),
        )


H = "host: payments\n"


def test_no_matching_fault_is_no_fault() -> None:
    plan = Run(H + "abort: {httpStatus: 503}\n").attempt(fqdn="orders.default.svc.cluster.local")
    assert plan is NO_FAULT
    assert (plan.injected, plan.terminal, plan.delay, plan.acts_on_body) == (
        False, None, 0.0, False,
    )  # fmt: skip


def test_delay_then_abort_with_headers_and_body() -> None:
    spec = (
        H
        + "delay: {fixedDelay: 250ms}\nabort: {httpStatus: 503, headers: {Retry-After: '1'}, body: busy}\n"
    )
    plan = Run(spec).attempt()
    assert plan.delay == 0.25
    assert plan.abort == AbortResponse(503, (("retry-after", "1"),), b"busy")
    assert plan.terminal == "abort"
    assert plan.faults == (REF + "f0:delay", REF + "f0:abort")


def test_grpc_abort_is_http_200_with_grpc_status() -> None:
    plan = Run(H + "abort: {grpcStatus: UNAVAILABLE}\n").attempt()
    assert plan.abort is not None
    assert plan.abort.status == 200
    assert dict(plan.abort.headers) == {"content-type": "application/grpc", "grpc-status": "14"}
    assert plan.abort.body == b""


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("{after: connect}", FaultReset("connect")),
        ("{after: headers}", FaultReset("headers")),
        ("{afterBytes: 100}", FaultReset("body", 100)),
    ],
)
def test_reset(yaml: str, expected: FaultReset) -> None:
    plan = Run(H + f"reset: {yaml}\n").attempt()
    assert (plan.reset, plan.terminal, plan.faults) == (expected, "reset", (REF + "f0:reset",))


def test_hang() -> None:
    plan = Run(H + "hang: true\ndelay: {fixedDelay: 1s}\n").attempt()
    assert (plan.hang, plan.terminal, plan.delay) == (True, "hang", 1.0)


def test_two_faults_delays_add_and_the_first_terminal_wins() -> None:
    run = Run(
        H + "delay: {fixedDelay: 100ms}\nabort: {httpStatus: 503}\n",
        H + "delay: {fixedDelay: 200ms}\nreset: {after: connect}\n",
    )
    plan = run.attempt()
    assert plan.delay == pytest.approx(0.3)
    assert plan.abort is not None and plan.abort.status == 503
    assert plan.reset is None
    assert plan.faults == (REF + "f0:delay", REF + "f0:abort", REF + "f1:delay")


def test_a_later_fault_terminal_applies_when_the_first_does_not_fire() -> None:
    run = Run(H + "abort: {httpStatus: 503}\nfirstN: 1\n", H + "reset: {after: headers}\n")
    assert run.attempt().terminal == "abort"
    assert run.attempt().terminal == "reset"


def test_body_transforms_combine() -> None:
    run = Run(
        H + "slowBody: {bytesPerSecond: 1000}\n",
        H + "truncateBody: {afterBytes: 10}\n",
        H + "slowBody: {bytesPerSecond: 500}\n",
        H + "truncateBody: {afterBytes: 20}\n",
        H + "corruptBody: {bytes: 1}\n",
        H + "corruptBody: {bytes: 2}\n",
    )
    plan = run.attempt()
    assert (plan.slow_body_bps, plan.truncate, plan.corrupt_bytes) == (
        500, (BodyPoint("bytes", 10),), 3,
    )  # fmt: skip
    assert plan.terminal is None and plan.acts_on_body
    assert len(plan.faults) == 6
    body = bytes(range(64))
    out = shaped(plan, body)
    assert len(out) == 10
    assert sum(a != b for a, b in zip(out, truncate(body, 10), strict=True)) == 3
    assert shaped(plan, body) == out  # pure: the corrupt seed is part of the plan
    assert out == corrupt(body[:10], 3, rng(plan.corrupt_seed))


def shaped(plan: AttemptPlan, body: bytes) -> bytes:
    shaper = BodyShaper(plan, len(body), "")
    steps = [*shaper.start(), *shaper.feed(body)]
    return b"".join(step for step in steps if isinstance(step, bytes))


def test_cuts_of_each_unit_are_kept_and_pauses_all_apply() -> None:
    run = Run(
        H + "truncateBody: {afterEvents: 3}\n",
        H + "truncateBody: {afterBytes: 50}\n",
        H + "truncateBody: {afterEvents: 2}\n",
        H + "pauseBody: {afterBytes: 0, for: 1s}\n",
        H + "pauseBody: {afterEvents: 1}\n",
    )
    plan = run.attempt()
    assert set(plan.truncate) == {BodyPoint("bytes", 50), BodyPoint("events", 2)}
    assert [(p.at, p.seconds) for p in plan.pauses] == [
        (BodyPoint("bytes", 0), 1.0), (BodyPoint("events", 1), None),
    ]  # fmt: skip


def test_body_transforms_are_dropped_when_no_upstream_body_is_sent() -> None:
    run = Run(H + "truncateBody: {afterBytes: 5}\n", H + "abort: {httpStatus: 500}\n")
    plan = run.attempt()
    assert (plan.truncate, plan.faults, plan.acts_on_body) == ((), (REF + "f1:abort",), False)


def test_body_transforms_apply_before_a_mid_body_reset() -> None:
    run = Run(H + "reset: {afterBytes: 100}\n", H + "corruptBody: {bytes: 4}\n")
    plan = run.attempt()
    assert (plan.reset, plan.corrupt_bytes) == (FaultReset("body", 100), 4)
    assert plan.faults == (REF + "f0:reset", REF + "f1:corruptBody")


def test_sequence_step_applies_only_its_action() -> None:
    run = Run(
        H + "delay: {fixedDelay: 1s}\nabort: {httpStatus: 503}\nsequence: [delay, abort, pass]\n"
    )
    plans = [run.attempt() for _ in range(4)]
    assert [(p.delay, p.terminal) for p in plans] == [(1, None), (0, "abort"), (0, None), (0, None)]
    assert plans[0].faults == (REF + "f0:delay",)
    assert plans[2] is NO_FAULT  # the pass step, then the finished sequence


def test_only_targeted_attempts_are_counted() -> None:
    run = Run(H + "endpoint: 127.0.0.1:9082\nabort: {httpStatus: 503}\nfirstN: 1\n")
    other = host(port=9081)
    assert [run.attempt(other).injected for _ in range(3)] == [False] * 3
    assert [run.attempt().injected for _ in range(2)] == [True, False]


def test_window_is_relative_to_when_the_config_was_applied() -> None:
    run = Run(H + "abort: {httpStatus: 503}\nwindow: {after: 5s, for: 10s}\n")
    assert [run.attempt(now=t).injected for t in (1.0, 5.0, 14.0, 15.0)] == [
        False,
        True,
        True,
        False,
    ]


SOAK = (
    H + "delay: {distribution: lognormal, median: 50ms, sigma: 0.8}\npercentage: {value: 30}\n",
    H + "abort: {httpStatus: 503}\nreset: {after: connect}\ncorruptBody: {bytes: 2}\n"
    "sequence: [abort, pass, reset, corruptBody]\nrepeat: true\n",
    H
    + "delay: {distribution: uniform, min: 0s, max: 10ms}\ncorruptBody: {bytes: 1}\npercentage: {value: 50}\n",
)


def soak(seed: int) -> list[AttemptPlan]:
    run = Run(*SOAK, seed=seed)
    return [run.attempt(now=i * 0.01) for i in range(1_000)]


def test_same_seed_same_plans_over_1000_attempts() -> None:
    first = soak(42)
    assert first == soak(42)
    assert first != soak(43)
    assert {p.terminal for p in first} == {None, "abort", "reset"}
    assert any(p.corrupt_bytes for p in first) and any(p.delay > 0.1 for p in first)
