"""The admin API's runtime layer: kubectl apply/delete semantics, without sockets."""

from __future__ import annotations

from chaoskit.config.loader import load_text
from chaoskit.proxy.admin_changes import RuntimeLayer
from tests.builders import fault, ratings_vs


def parse(text: str, file: str = "<admin>") -> tuple:
    loaded = load_text(text, file)
    assert not loaded.issues.errors
    return loaded.resources


def test_created_then_unchanged_even_at_another_line_then_configured():
    layer, lines = RuntimeLayer().applied(parse(fault("host: ratings\nabort: {httpStatus: 503}\n")))
    assert lines == ["upstreamfault/f created"]
    moved = "\n---\n" + fault(
        "host: ratings\nabort: {httpStatus: 503}\n"
    )  # same content, later line
    layer, lines = layer.applied(parse(moved, "<other>"))
    assert lines == ["upstreamfault/f unchanged"]
    layer, lines = layer.applied(parse(fault("host: ratings\nabort: {httpStatus: 429}\n")))
    assert lines == ["upstreamfault/f configured"]
    assert len(layer.resources) == 1


def test_last_applied_wins_per_kind_namespace_name():
    both = fault("host: ratings\nabort: {httpStatus: 503}\n") + "---\n" + ratings_vs()
    layer, _ = RuntimeLayer().applied(parse(both))
    layer, _ = layer.applied(parse(fault("host: ratings\nabort: {httpStatus: 500}\n", name="g")))
    assert [(r.KIND, r.name) for r in layer.resources] == [
        ("UpstreamFault", "f"),
        ("VirtualService", "ratings"),
        ("UpstreamFault", "g"),
    ]
    layer, lines = layer.applied(parse(fault("host: ratings\nabort: {httpStatus: 502}\n")))
    assert lines == ["upstreamfault/f configured"]
    assert [r.name for r in layer.resources] == ["ratings", "g", "f"]  # moved to the end


def test_delete_removes_by_name_and_reports_what_was_never_applied():
    layer, _ = RuntimeLayer().applied(parse(fault("host: ratings\nabort: {httpStatus: 503}\n")))
    new, lines, missing = layer.deleted(parse(fault("host: ratings\ndelay: {fixedDelay: 1s}\n")))
    assert (new.resources, lines, missing) == ((), ["upstreamfault/f deleted"], [])
    _, lines, missing = new.deleted(parse(ratings_vs()))
    assert lines == [] and missing == ['virtualservice "ratings" not found in the runtime layer']


def test_the_layer_is_immutable_and_loads_as_one_result():
    layer = RuntimeLayer()
    assert layer.results() == []
    new, _ = layer.applied(parse(fault("host: ratings\nabort: {httpStatus: 503}\n")))
    assert layer.resources == () and len(new.results()[0].resources) == 1


def test_faults_are_created_configured_in_place_unchanged_and_removed():
    from chaoskit.config.named_faults import parse_fault_body

    def named(name: str, status: int):
        body = f'{{"host": "ratings", "abort": {{"httpStatus": {status}}}}}'
        f, _ = parse_fault_body(body, "<admin>", name)
        assert f is not None
        return f

    layer, verb = RuntimeLayer().with_fault(named("a", 503))
    layer, _ = layer.with_fault(named("b", 503))
    assert verb == "created" and [f.name for f in layer.faults] == ["a", "b"]
    assert layer.with_fault(named("a", 503)) == (layer, "unchanged")
    layer, verb = layer.with_fault(named("a", 429))
    assert verb == "configured" and [f.name for f in layer.faults] == ["a", "b"]  # same place
    assert [f.name for f in layer.without_faults("a").faults] == ["b"]
    assert layer.without_faults().faults == ()
    layer, _ = layer.applied(parse(ratings_vs()))
    assert layer.without_faults().resources == layer.resources  # resources stay
