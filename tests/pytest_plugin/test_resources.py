"""Building the resources ``chaos.fault`` and ``chaos.route_fault`` apply."""

from __future__ import annotations

import pytest
from chaoskit_pytest.resources import (
    build_route_fault,
    build_upstream_fault,
    label_for,
    parse_rule_parts,
    with_fault,
)

from chaoskit.config.match import HTTPMatchRequest, StringMatch
from chaoskit.config.virtual_service import VirtualService
from chaoskit.errors import ConfigError
from chaoskit.sources import to_results


def test_build_upstream_fault_writes_the_documented_shape():
    resource = build_upstream_fault(
        "payments",
        name="x",
        abort={"httpStatus": 503, "headers": {"retry-after": "1"}},
        delay=0.25,
        first=2,
        subset="v2",
        endpoint_labels={"zone": "a"},
        match={"uri": {"prefix": "/pay"}},
    )
    assert resource == {
        "apiVersion": "chaoskit.dev/v1alpha1",
        "kind": "UpstreamFault",
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {
            "host": "payments",
            "subset": "v2",
            "endpointLabels": {"zone": "a"},
            "match": [{"uri": {"prefix": "/pay"}}],
            "delay": {"fixedDelay": "250ms"},
            "abort": {"httpStatus": 503, "headers": {"retry-after": "1"}},
            "firstN": 2,
        },
    }


@pytest.mark.parametrize(
    ("kwargs", "spec"),
    [
        ({"abort": 503}, {"abort": {"httpStatus": 503}}),
        ({"abort": "UNAVAILABLE"}, {"abort": {"grpcStatus": "UNAVAILABLE"}}),
        ({"delay": "1.5s"}, {"delay": {"fixedDelay": "1.5s"}}),
        ({"delay": 2}, {"delay": {"fixedDelay": "2s"}}),
        ({"reset": "connect"}, {"reset": {"after": "connect"}}),
        ({"reset": 100}, {"reset": {"afterBytes": 100}}),
        ({"hang": True}, {"hang": True}),
        (
            {"abort": 503, "percent": 50},
            {"abort": {"httpStatus": 503}, "percentage": {"value": 50}},
        ),
        ({"abort": 503, "nth": 3}, {"abort": {"httpStatus": 503}, "nth": 3}),
        (
            {"abort": 503, "sequence": ["abort", "pass"], "repeat": True},
            {"abort": {"httpStatus": 503}, "sequence": ["abort", "pass"], "repeat": True},
        ),
        ({"slow_body": 1000}, {"slowBody": {"bytesPerSecond": 1000}}),
        ({"truncate_body": 10}, {"truncateBody": {"afterBytes": 10}}),
        ({"corrupt_body": 2}, {"corruptBody": {"bytes": 2}}),
        ({"endpoint": "127.0.0.1:9"}, {"endpoint": "127.0.0.1:9"}),
        ({"window": {"after": "1s", "for": "2s"}}, {"window": {"after": "1s", "for": "2s"}}),
    ],
)
def test_build_upstream_fault_maps_each_keyword(kwargs, spec):
    assert build_upstream_fault("payments", name="x", **kwargs)["spec"] == {
        "host": "payments",
        **spec,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"abort": True}, "abort must be an HTTP status"),
        ({"delay": None, "reset": True}, "reset must be 'connect'"),
        ({"delay": [1]}, "delay must be a duration"),
        ({"abort": 503, "percent": "50"}, "percent must be a number"),
    ],
)
def test_build_upstream_fault_refuses_wrong_types(kwargs, message):
    with pytest.raises(TypeError, match=message):
        build_upstream_fault("payments", name="x", **kwargs)


def test_build_route_fault_sets_the_percentage_on_each_action():
    assert build_route_fault(delay="2s", abort=503, percent=25) == {
        "delay": {"fixedDelay": "2s", "percentage": {"value": 25}},
        "abort": {"percentage": {"value": 25}, "httpStatus": 503},
    }
    with pytest.raises(TypeError, match="needs delay= and/or abort="):
        build_route_fault()


def test_label_for_makes_a_dns_label():
    assert label_for("payments.prod.svc.cluster.local") == "payments"
    assert label_for("Pay_Ments") == "pay-ments"
    assert label_for("10.0.0.1") == "10"
    assert label_for("***") == "host"


def test_parse_rule_parts_uses_the_virtual_service_parser():
    fault, matches = parse_rule_parts(
        "payments", build_route_fault(delay=0.5, percent=10), [{"uri": {"prefix": "/pay"}}]
    )
    assert fault.delay is not None and (fault.delay.fixed_delay, fault.delay.percentage) == (
        0.5,
        10,
    )
    assert matches[0].uri == StringMatch("prefix", "/pay")
    with pytest.raises(ConfigError, match="HTTP status 700"):
        parse_rule_parts("payments", build_route_fault(abort=700), [])


def test_with_fault_faults_forwarding_rules_and_narrows_copies_with_match():
    (loaded,) = to_results(
        [
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: p}\n"
            "spec:\n  hosts: [p]\n  http:\n"
            "  - {match: [{headers: {x-v: {exact: '2'}}}], route: [{destination: {host: p}}]}\n"
            "  - {directResponse: {status: 204}}\n"
            "  - {route: [{destination: {host: p}}]}\n"
        ]
    )
    (vs,) = loaded.resources
    assert isinstance(vs, VirtualService)
    fault, (extra,) = parse_rule_parts(
        "p", build_route_fault(abort=503), [{"uri": {"prefix": "/pay"}}]
    )
    plain = with_fault(vs, fault, ())
    assert [r.fault is not None for r in plain] == [True, False, True]
    narrowed = with_fault(vs, fault, (extra,))
    assert [r.fault is not None for r in narrowed] == [True, False, False, True, False]
    assert [r.index for r in narrowed] == [0, 1, 2, 3, 4]
    first = narrowed[0].match[0]
    assert first.uri == StringMatch("prefix", "/pay") and set(first.headers) == {"x-v"}
    assert narrowed[3].match == (HTTPMatchRequest(uri=StringMatch("prefix", "/pay")),)
