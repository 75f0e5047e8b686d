import pytest

from chaoskit.config.experiment import Experiment
from chaoskit.config.loader import load_text

HEAD = "apiVersion: chaoskit.dev/v1alpha1\nkind: Experiment\nmetadata: {name: e}\nspec:\n"


def load(spec: str):
    result = load_text(HEAD + "".join("  " + line + "\n" for line in spec.strip("\n").splitlines()))
    return result


def test_full_experiment():
    result = load("""
title: checkout survives slow payments
seed: 7
mesh: [mesh/]
apps:
- {name: checkout, command: [python, app.py], ready: "http://127.0.0.1:9000/health", readyTimeout: 5s, workload: checkout, env: {MODE: test}}
traffic:
  requests: 20
  concurrency: 2
  rate: 10
  timeout: 2s
  targets:
  - {url: "${gateway:8080}/checkout", via: direct, method: post, headers: {end-user: jason}, body: "{}", weight: 3}
  - {url: "http://checkout:9000/", workload: tester}
hypothesis:
  successRate: 0.99
  latency: {p95: 1s, p99: 2s}
  probes:
  - name: page
    request: {url: "http://checkout:9000/"}
    expect: {status: 200, bodyContains: [ok], bodyNotContains: [error], maxLatency: 1s}
faults:
- name: slow
  files: [faults/slow.yaml]
  after: 1s
  for: 5s
- resources:
  - {apiVersion: chaoskit.dev/v1alpha1, kind: UpstreamFault, metadata: {name: f}, spec: {host: payments, abort: {httpStatus: 503}}}
during: {successRate: 0.9}
rollbacks: [{name: clean, command: [rm, -f, x]}]
""")
    assert not result.issues.errors, [str(i) for i in result.issues]
    (exp,) = result.resources
    assert isinstance(exp, Experiment)
    assert exp.seed == 7 and exp.mesh == ("mesh/",)
    assert exp.apps[0].ready_timeout == 5.0 and exp.apps[0].env == {"MODE": "test"}
    assert exp.traffic is not None and exp.traffic.rate == 10 and exp.traffic.timeout == 2.0
    first, second = exp.traffic.targets
    assert (first.method, first.via, first.weight) == ("POST", "direct", 3)
    assert (second.via, second.workload) == ("mesh", "tester")
    assert exp.hypothesis.success_rate == 0.99 and exp.hypothesis.allowed_statuses == (200,)
    assert exp.hypothesis.latency == {"p95": 1.0, "p99": 2.0}
    assert exp.hypothesis.probes[0].body_not_contains == ("error",)
    assert [f.name for f in exp.faults] == ["slow", "fault-2"]
    assert exp.faults[0].after == 1.0 and exp.faults[0].duration == 5.0
    assert exp.faults[1].resources[0]["kind"] == "UpstreamFault"
    assert exp.during is not None and exp.during.success_rate == 0.9


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        (
            "traffic: {requests: 5, duration: 1s, targets: [{url: 'http://a/'}]}\nhypothesis: {successRate: 1}",
            "spec.traffic",
            "exactly one of requests, duration",
        ),
        (
            "traffic: {requests: 5, targets: [{url: 'ftp://a/'}]}\nhypothesis: {successRate: 1}",
            "spec.traffic.targets[0].url",
            "not an http(s) URL",
        ),
        (
            "traffic: {requests: 5, targets: [{url: 'http://a/', via: sideways}]}\nhypothesis: {successRate: 1}",
            "spec.traffic.targets[0].via",
            "is not one of",
        ),
        (
            "hypothesis: {successRate: 99}\ntraffic: {requests: 1, targets: [{url: 'http://a/'}]}",
            "spec.hypothesis.successRate",
            "fraction",
        ),
        (
            "hypothesis: {latency: {p95: fast}}\ntraffic: {requests: 1, targets: [{url: 'http://a/'}]}",
            "spec.hypothesis.latency.p95",
            "not a duration",
        ),
        (
            "apps: [{name: a, command: []}]\ntraffic: {requests: 1, targets: [{url: 'http://a/'}]}",
            "spec.apps[0].command",
            "must not be empty",
        ),
        (
            "faults: [{name: x}]\ntraffic: {requests: 1, targets: [{url: 'http://a/'}]}",
            "spec.faults[0]",
            "needs files or resources",
        ),
        ("title: nothing", "spec", "needs traffic or probes"),
        (
            "traffic: {requests: 1, targets: [{url: 'http://a/'}]}\nhypotesis: {}",
            "spec.hypotesis",
            'did you mean "hypothesis"',
        ),
    ],
)
def test_invalid_experiments(spec, path, fragment):
    found = [(i.path, i.message) for i in load(spec).issues.errors]
    assert any(p == path and fragment in m for p, m in found), found


def test_missing_files_are_reported_by_validate(tmp_path):
    from chaoskit.config import validate_paths

    f = tmp_path / "e.yaml"
    f.write_text(
        HEAD
        + "  mesh: [nope/]\n  traffic: {requests: 1, targets: [{url: 'http://a/'}]}\n  hypothesis: {successRate: 1}\n"
    )
    v = validate_paths([f])
    assert any(i.path == "spec.mesh[0]" and "does not exist" in i.message for i in v.issues.errors)
