"""Header plans: Istio's translation order, Envoy's level ordering, set/add/remove, variables."""

from __future__ import annotations

import datetime

import pytest

from chaoskit.config.http_route import HeaderOperations
from chaoskit.routing.headers import (
    EMPTY_PLAN,
    HeaderContext,
    HeaderOp,
    HeaderPlan,
    apply,
    authority_of,
    compose,
    substitute,
)


def ops(
    set: dict[str, str] | None = None,
    add: dict[str, str] | None = None,
    remove: tuple[str, ...] = (),
) -> HeaderOperations:
    return HeaderOperations(set=set or {}, add=add or {}, remove=remove)


def test_one_level_is_removals_then_sets_then_adds_sorted_by_name() -> None:
    plan = HeaderPlan.of(
        ops(set={"x-b": "1", "X-A": "2"}, add={"x-d": "3", "x-c": "4"}, remove=("x-z",))
    )
    assert plan.ops == (
        HeaderOp("remove", "x-z"),
        HeaderOp("set", "x-a", "2"),
        HeaderOp("set", "x-b", "1"),
        HeaderOp("add", "x-c", "4"),
        HeaderOp("add", "x-d", "3"),
    )


def test_authority_and_pseudo_headers_are_not_header_operations() -> None:
    o = ops(set={"host": "a.example", "x": "1"}, add={":authority": "b.example"}, remove=("host",))
    assert HeaderPlan.of(o).ops == (HeaderOp("set", "x", "1"),)
    assert authority_of(o) == "a.example"  # set beats add
    assert authority_of(ops(add={":authority": "b.example"})) == "b.example"
    assert authority_of(ops(set={"x": "1"})) is None
    assert authority_of(None) is None
    assert HeaderPlan.of(None) is EMPTY_PLAN


def test_single_destination_ops_come_after_the_rule_so_its_set_wins() -> None:
    top = HeaderPlan.of(ops(set={"x-v": "route"}))
    dest = HeaderPlan.of(ops(set={"x-v": "destination"}))
    plan = compose(top, dest, weighted=False)
    assert apply(plan, []) == [("x-v", "destination")]


def test_weighted_destination_ops_come_first_so_the_rule_set_wins() -> None:
    top = HeaderPlan.of(ops(set={"x-v": "route"}))
    dest = HeaderPlan.of(ops(set={"x-v": "destination"}, add={"x-only-dest": "1"}))
    plan = compose(top, dest, weighted=True)
    assert apply(plan, []) == [("x-v", "route"), ("x-only-dest", "1")]


def test_each_level_removes_before_it_adds() -> None:
    # Envoy: a level's headers_to_remove run before its headers_to_add.
    plan = HeaderPlan.of(ops(add={"x-a": "new"}, remove=("x-a",)))
    assert apply(plan, [("x-a", "old")]) == [("x-a", "new")]
    # ... but a later level's removal drops what an earlier level added.
    later = compose(plan, HeaderPlan.of(ops(remove=("x-a",))), weighted=False)
    assert apply(later, [("x-a", "old")]) == []


def test_apply_set_add_remove_case_insensitively() -> None:
    headers = [("Accept", "a"), ("X-Tag", "1"), ("x-tag", "2"), ("Via", "v")]
    plan = HeaderPlan(
        (
            HeaderOp("set", "x-tag", "3"),
            HeaderOp("add", "accept", "b"),
            HeaderOp("remove", "via"),
            HeaderOp("set", "x-new", "n"),
        )
    )
    assert apply(plan, headers) == [
        ("Accept", "a"),
        ("X-Tag", "3"),
        ("accept", "b"),
        ("x-new", "n"),
    ]
    assert headers[2] == ("x-tag", "2")  # the input is not modified


def test_empty_values_do_nothing() -> None:
    plan = HeaderPlan((HeaderOp("set", "x", ""), HeaderOp("add", "y", "%REQ(absent)%")))
    assert apply(plan, [("x", "keep")]) == [("x", "keep")]


def test_plan_helpers() -> None:
    a = HeaderPlan((HeaderOp("remove", "a"),))
    assert not EMPTY_PLAN and a
    assert a.then(EMPTY_PLAN) is a and EMPTY_PLAN.then(a) is a
    assert a.then(a).ops == a.ops * 2


CTX = HeaderContext(
    hostname="proxy-1",
    downstream_remote_address="10.0.0.7:51234",
    protocol="HTTP/1.1",
    start_time=datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC),
    request_headers={"x-user": "jason", "x-alt": "alt"},
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100%%", "100%"),
        ("%%HOSTNAME%%", "%HOSTNAME%"),
        ("%HOSTNAME%", "proxy-1"),
        ("from %DOWNSTREAM_REMOTE_ADDRESS%", "from 10.0.0.7:51234"),
        ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.0.7"),
        ("%PROTOCOL%", "HTTP/1.1"),
        ("%START_TIME%", "2024-05-06T07:08:09.123Z"),
        ("%START_TIME(%s)%", "%START_TIME(%s)%"),  # formats are not supported: literal
        ("%REQ(X-User)%", "jason"),
        ("%REQ(x-missing?x-alt)%", "alt"),
        ("%UPSTREAM_CLUSTER%", "%UPSTREAM_CLUSTER%"),  # unsupported: literal
        ("plain", "plain"),
    ],
)
def test_substitute(value: str, expected: str) -> None:
    assert substitute(value, CTX) == expected


def test_without_context_variables_stay_literal_but_percent_unescapes() -> None:
    assert substitute("%HOSTNAME% 5%%") == "%HOSTNAME% 5%"
    assert substitute("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", HeaderContext()) == (
        "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
    )


@pytest.mark.parametrize(
    ("address", "expected"),
    [("[::1]:80", "::1"), ("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("host:8080", "host")],
)
def test_remote_address_without_port(address: str, expected: str) -> None:
    ctx = HeaderContext(downstream_remote_address=address)
    assert substitute("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", ctx) == expected


def test_apply_substitutes_with_the_context() -> None:
    plan = HeaderPlan((HeaderOp("set", "x-served-by", "%HOSTNAME%"),))
    assert apply(plan, [], CTX) == [("x-served-by", "proxy-1")]
