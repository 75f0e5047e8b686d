"""``chaoskit.strategies``: every generated plan validates, and failures shrink to small plans."""

from __future__ import annotations

import random

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from chaoskit.sources import validated
from chaoskit.strategies import KINDS, SELECTIONS, fault_name, fault_plans, upstream_faults

HOSTS = ["payments", "ratings"]
#: ``find`` draws fresh random examples on every run unless told otherwise (and replays the
#: example database): derandomized, the search and its shrunk answer are the same every time.
FIND = settings(derandomize=True, database=None)


def registry(*hosts: str) -> list[dict[str, object]]:
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": host},
            "spec": {
                "hosts": [host],
                "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                "resolution": "STATIC",
                "endpoints": [{"address": "127.0.0.1", "ports": {"http": 9000}}],
            },
        }
        for host in hosts
    ]


@given(fault_plans(HOSTS, kinds=KINDS, max_faults=4))
def test_every_plan_validates_without_issues(plan):
    v = validated(*registry(*HOSTS), *plan)
    assert not v.issues, [str(i) for i in v.issues]
    assert len(v.mesh.upstream_faults) == len(plan)


@given(fault_plans(HOSTS, kinds=("delay", "hang"), min_faults=1, max_faults=2, max_count=3))
def test_plans_respect_their_bounds(plan):
    assert 1 <= len(plan) <= 2
    names = [f["metadata"]["name"] for f in plan]
    assert len(set(names)) == len(names)
    for fault, name in zip(plan, names, strict=True):
        assert name.removesuffix("-2") == fault_name("plan", fault["spec"])
    for fault in plan:
        spec = fault["spec"]
        assert spec["host"] in HOSTS
        assert {"delay", "hang"} & spec.keys() and len(set(KINDS) & spec.keys()) == 1
        assert sum(key in spec for key in ("firstN", "nth", "sequence", "percentage")) == 1
        assert spec.get("firstN", 1) <= 3 and spec.get("nth", 1) <= 3
        assert len(spec.get("sequence", ())) <= 4


@given(upstream_faults(["payments"], kinds=["delay"], max_delay=0.05, selections=["firstN"]))
def test_one_fault_with_bounded_parameters(fault):
    assert fault["metadata"] == {"name": "fault", "namespace": "default"}
    delay_ms = int(fault["spec"]["delay"]["fixedDelay"].removesuffix("ms"))
    assert 1 <= delay_ms <= 50 and 1 <= fault["spec"]["firstN"] <= 5


@given(st.data())
def test_sequences_always_name_their_action(data):
    fault = data.draw(upstream_faults(["payments"], kinds=["abort"], selections=["sequence"]))
    assert "abort" in fault["spec"]["sequence"]


def test_shrinking_finds_the_single_mildest_fault():
    """The smallest plan with an abort: one abort, on the first host, first status, firstN 1."""
    plan = find(fault_plans(HOSTS), lambda p: any("abort" in f["spec"] for f in p), settings=FIND)
    assert plan == [
        {
            "apiVersion": "chaoskit.dev/v1alpha1",
            "kind": "UpstreamFault",
            "metadata": {"name": "plan-payments-abort", "namespace": "default"},
            "spec": {"host": "payments", "abort": {"httpStatus": 503}, "firstN": 1},
        }
    ]


def test_shrinking_a_plan_that_breaks_by_repetition():
    """ "Breaks when ratings fails 3 times in a row" shrinks to one firstN: 3 fault on ratings."""

    def breaks(plan):
        return any(f["spec"]["host"] == "ratings" and f["spec"].get("firstN", 0) >= 3 for f in plan)

    (fault,) = find(fault_plans(HOSTS), breaks, settings=FIND)
    assert fault["spec"] == {"host": "ratings", "delay": {"fixedDelay": "1ms"}, "firstN": 3}


def test_a_fault_keeps_its_name_when_another_is_deleted():
    """A fault's random draws come from a stream seeded by its name (``percentage``): named by
    position, deleting a harmless fault in front renamed the one that mattered, changed its
    draws, and shrinking kept the harmless one. The proxy's per-fault stream, modelled: an
    abort fires when its name's first draw is under its percentage."""

    def fires(fault: dict[str, object]) -> bool:
        spec = fault["spec"]
        assert isinstance(spec, dict)
        draw = random.Random(f"upstreamfault/{fault['metadata']['name']}").random() * 100  # type: ignore[index]
        return "abort" in spec and draw < spec.get("percentage", {"value": 100})["value"]

    for seed in range(20):
        plan = find(
            fault_plans(HOSTS, kinds=("delay", "abort"), selections=["percentage"]),
            lambda p: any(fires(f) for f in p),
            settings=settings(database=None, max_examples=200),
            random=random.Random(seed),
        )
        assert len(plan) == 1, plan  # nothing harmless left beside the abort


def test_shrinking_prefers_rare_selections():
    (fault,) = find(
        fault_plans(["payments"], kinds=["abort"], selections=["nth"]),
        lambda p: len(p) >= 1,
        settings=FIND,
    )
    assert fault["spec"] == {"host": "payments", "abort": {"httpStatus": 503}, "nth": 5}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hosts": []}, "hosts must be a non-empty list"),
        ({"hosts": "payments"}, "hosts must be a non-empty list"),
        ({"hosts": HOSTS, "kinds": ["explode"]}, "kinds must be a non-empty list from delay"),
        ({"hosts": HOSTS, "selections": ["always"]}, "selections must be a non-empty list"),
        ({"hosts": HOSTS, "statuses": [99]}, "statuses must be HTTP statuses"),
        ({"hosts": HOSTS, "max_count": 0}, "max_count must be at least 1"),
        ({"hosts": HOSTS, "min_faults": 3, "max_faults": 1}, "need 0 <= min_faults <= max_faults"),
    ],
)
def test_bad_arguments_are_refused_up_front(kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        fault_plans(**kwargs)


def test_the_public_names():
    assert SELECTIONS == ("firstN", "nth", "sequence", "percentage")
    assert KINDS[0] == "delay" and KINDS[-1] == "hang"
