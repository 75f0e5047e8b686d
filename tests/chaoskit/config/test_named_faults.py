"""Named faults of the admin API (``/faults``), without sockets: reading a body with located
messages, and how a route fault joins the VirtualServices of a configuration."""

from __future__ import annotations

import json

import pytest

from chaoskit.config import validate
from chaoskit.config.fault_splice import Target, materialize, missing_rule
from chaoskit.config.loader import load_text
from chaoskit.config.named_faults import Fault, conflict, parse_fault_body, unknown_host
from chaoskit.config.virtual_service import VirtualService
from chaoskit.proxy.admin_changes import RuntimeLayer
from tests.builders import ratings_vs, route_to, service_entry

WHERE = "<admin:PUT /faults/f>"
MESH = service_entry("ratings", 9080) + "---\n" + service_entry("reviews", 9081)


def read(body: object, url_name: str | None = "f") -> Fault:
    fault, issues = parse_fault_body(json.dumps(body), WHERE, url_name)
    assert fault is not None, [str(i) for i in issues]
    return fault


def refused(text: str, url_name: str | None = "f") -> list[str]:
    fault, issues = parse_fault_body(text, WHERE, url_name)
    assert fault is None
    return [str(i) for i in issues.sorted() if i.severity == "error"]


def resources(text: str) -> list:
    loaded = load_text(text, "mesh.yaml")
    assert not loaded.issues.errors
    return list(loaded.resources)


def test_a_route_fault_reads_istios_fields_and_fires_always_unless_told():
    f = read({"host": "ratings", "delay": {"fixedDelay": "2s"}, "abort": {"httpStatus": 503}})
    assert (f.name, f.namespace, f.type, f.fqdn) == (
        "f", "default", "route", "ratings.default.svc.cluster.local",
    )  # fmt: skip
    assert f.fault is not None and f.fault.delay is not None and f.fault.abort is not None
    assert (f.fault.delay.fixed_delay, f.fault.delay.percentage) == (2.0, 100.0)
    assert f.fault.abort.percentage == 100.0
    # the definition is what was given: the default percentage is not written into it
    assert f.definition == {"name": "f", "namespace": "default", "type": "route",
                            "host": "ratings", "delay": {"fixedDelay": "2s"},
                            "abort": {"httpStatus": 503}}  # fmt: skip


@pytest.mark.parametrize("percentage", [50, {"value": 50}])
def test_percentage_is_istios_message_or_its_number(percentage):
    f = read({"host": "ratings", "delay": {"fixedDelay": "2s", "percentage": percentage}})
    assert f.fault is not None and f.fault.delay is not None
    assert f.fault.delay.percentage == 50.0


def test_an_upstream_fault_is_an_upstream_fault_spec():
    f = read({"type": "upstream", "host": "ratings", "reset": {"after": "headers"},
              "percentage": 50})  # fmt: skip
    assert f.upstream is not None and f.upstream.name == "f" and f.upstream.reset is not None
    assert f.upstream.percentage == 50.0
    counted = read({"type": "upstream", "host": "ratings", "hang": True, "firstN": 2})
    assert counted.upstream is not None and counted.upstream.first_n == 2


def test_messages_are_located_in_the_body_with_the_loaders_words():
    body = "host: ratings\nabort:\n  httpStatus: 999\nsubset: v1\ntpye: route\n"
    assert refused(body) == [
        f"{WHERE}:3: error: fault/f: abort.httpStatus: HTTP status 999 is not in range 200-599",
        f'{WHERE}:4: error: fault/f: subset: "subset" is an UpstreamFault field: add "type": '
        '"upstream"',
        f'{WHERE}:5: error: fault/f: tpye: unknown field "tpye"; did you mean "type"?',
    ]
    assert refused("name: Bad_Name\nhost: ratings\ndelay: {fixedDelay: 1s}\n", None) == [
        f"{WHERE}:1: error: fault/Bad_Name: name: 'Bad_Name' is not a valid name "
        "(lower-case DNS-1123: a-z, 0-9, '-', '.')"
    ]
    assert refused("host: ratings\ndelay: {fixedDelay: 1s}\n", None) == [
        f'{WHERE}:1: error: fault/?: "name" is required'
    ]
    assert refused("[1, 2]") == [f"{WHERE}:1: error: the body must be one mapping (a fault: "
                                 "name, host, ...)"]  # fmt: skip
    assert refused("type: upstrem\nhost: ratings\n")[0].endswith(
        'type: "upstrem" is not one of route, upstream; did you mean "upstream"?'
    )


def test_an_unknown_host_gets_a_did_you_mean_from_the_registry():
    mesh = validate([load_text(MESH)]).mesh
    assert unknown_host(read({"host": "ratings", "delay": {"fixedDelay": "1s"}}), mesh) is None
    problem = unknown_host(read({"host": "ratngs", "delay": {"fixedDelay": "1s"}}), mesh)
    assert problem == (
        "host 'ratngs' (ratngs.default.svc.cluster.local) is not in the registry: no "
        'ServiceEntry defines it; did you mean "ratings"?'
    )
    external = validate([load_text(MESH + "---\n" + route_to("api.example.com"))]).mesh
    route = read({"host": "api.example.com", "abort": {"httpStatus": 503}})
    assert unknown_host(route, external) is None  # a mesh VirtualService serves it


def test_a_host_without_virtual_service_gets_one_that_routes_to_it():
    f = read({"host": "ratings", "abort": {"httpStatus": 503}})
    made, targets = materialize([f], resources(MESH))
    (vs,) = made
    assert isinstance(vs, VirtualService) and vs.name == "fault-f"
    assert vs.fqdn_hosts == ("ratings.default.svc.cluster.local",)
    assert [r.fault for r in vs.http] == [f.fault]
    assert targets == {"f": [Target("VirtualService", "default", "fault-f", "created")]}
    v = validate([load_text(MESH), RuntimeLayer(faults=(f,)).results([load_text(MESH)])[0]])
    assert not v.issues.errors, [str(i) for i in v.issues.errors]


def test_a_fault_is_spliced_into_the_hosts_virtual_service_never_a_second_one():
    existing = ratings_vs("timeout: 3s\n")
    f = read({"host": "ratings", "abort": {"httpStatus": 503}})
    made, targets = materialize([f], resources(MESH + "---\n" + existing))
    (vs,) = made
    assert isinstance(vs, VirtualService) and vs.name == "ratings"
    assert [(r.fault, r.timeout) for r in vs.http] == [(f.fault, 3.0)]
    assert targets["f"] == [Target("VirtualService", "default", "ratings", "patched")]


def test_with_match_a_narrowed_faulted_copy_goes_in_front():
    f = read({"host": "ratings", "abort": {"httpStatus": 503},
              "match": [{"headers": {"end-user": {"exact": "bob"}}}]})  # fmt: skip
    (vs,) = materialize([f], resources(MESH))[0]
    assert isinstance(vs, VirtualService)
    assert [(bool(r.match), r.fault is not None) for r in vs.http] == [(True, True), (False, False)]


def test_a_wildcard_virtual_service_is_copied_for_the_one_host():
    wild = route_to("ratings", "timeout: 4s\n").replace(
        "hosts: [ratings]", 'hosts: ["*.svc.cluster.local"]'
    )
    f = read({"host": "ratings", "abort": {"httpStatus": 503}})
    made, targets = materialize([f], resources(MESH + "---\n" + wild))
    (vs,) = made
    assert isinstance(vs, VirtualService)
    assert (vs.name, vs.fqdn_hosts) == ("fault-f", ("ratings.default.svc.cluster.local",))
    assert [(r.fault, r.timeout) for r in vs.http] == [(f.fault, 4.0)]  # the wildcard's rules
    assert targets["f"][0].action == "created"


def test_a_created_name_never_replaces_a_virtual_service_of_the_files():
    taken = route_to("reviews").replace("name: reviews", "name: fault-f")
    f = read({"host": "ratings", "abort": {"httpStatus": 503}})
    (vs,) = materialize([f], resources(MESH + "---\n" + taken))[0]
    assert vs.name == "fault-f-2"


def test_faults_on_one_host_stack_in_one_virtual_service_and_the_same_requests_conflict():
    a = read({"host": "ratings", "abort": {"httpStatus": 503}}, "a")
    bob = {"headers": {"end-user": {"exact": "bob"}}}
    b = read({"host": "ratings", "delay": {"fixedDelay": "1s"}, "match": [bob]}, "b")
    (vs,) = materialize([a, b], resources(MESH))[0]
    assert vs.name == "fault-a" and [r.fault for r in vs.http] == [b.fault, a.fault]
    assert conflict(b, [a]) is None  # other requests
    same = read({"host": "ratings", "delay": {"fixedDelay": "1s"}}, "c")
    assert conflict(same, [a, b]) is a
    assert conflict(read({"host": "ratings", "delay": {"fixedDelay": "2s"}}, "a"), [a]) is None


TWO_RULES = route_to("ratings").replace(
    "  http:\n  - route:",
    "  http:\n  - name: bob\n    match: [{headers: {end-user: {exact: bob}}}]\n"
    "    route: [{destination: {host: ratings}}]\n  - name: rest\n    route:",
)


def test_route_name_faults_only_that_rule_of_the_virtual_service():
    f = read({"host": "ratings", "abort": {"httpStatus": 503}, "routeName": "bob"})
    (vs,) = materialize([f], resources(MESH + "---\n" + TWO_RULES))[0]
    assert isinstance(vs, VirtualService)
    assert [(r.name, r.fault is not None) for r in vs.http] == [("bob", True), ("rest", False)]
    mesh = validate([load_text(MESH + "---\n" + TWO_RULES)]).mesh
    assert missing_rule(f, mesh) is None
    typo = read({"host": "ratings", "abort": {"httpStatus": 503}, "routeName": "bbo"})
    assert missing_rule(typo, mesh) == (
        "the VirtualService of ratings has no rule named 'bbo' (its named rules: bob, rest); "
        'did you mean "bob"?'
    )
    bare = validate([load_text(MESH)]).mesh
    assert missing_rule(typo, bare) == "no VirtualService serves ratings, so it has no rule 'bbo'"


def test_a_created_virtual_service_names_the_port_of_a_service_with_several():
    multi = service_entry("multi", 9090).replace(
        "ports: [{number: 80, name: http, protocol: HTTP}]",
        "ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: alt, "
        "protocol: HTTP}]",
    )
    base = [load_text(multi)]
    f = read({"host": "multi", "abort": {"httpStatus": 503}})
    (vs,) = materialize([f], base[0].resources)[0]
    assert isinstance(vs, VirtualService)
    assert [(r.match[0].port, r.route[0].destination.port) for r in vs.http] == [
        (80, 80),
        (8080, 8080),
    ]
    v = validate([*base, *RuntimeLayer(faults=(f,)).results(base)])
    assert not v.issues.errors, [str(i) for i in v.issues.errors]
