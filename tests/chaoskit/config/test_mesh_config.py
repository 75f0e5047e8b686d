"""MeshConfig parsing and the pure resolution of mesh-wide defaults."""

from __future__ import annotations

import textwrap

import pytest

from chaoskit.config.http_route import DEFAULT_RETRY_ON, HTTPRetry
from chaoskit.config.loader import LoadResult, load_text
from chaoskit.config.mesh_config import (
    CLASSIC_DEFAULTS,
    ISTIO_CURRENT_DEFAULTS,
    MeshConfig,
    MeshDefaults,
    effective_defaults,
)
from chaoskit.config.resource import Metadata
from chaoskit.config.yamlsource import Location

HEAD = """\
apiVersion: chaoskit.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
"""


def load(spec: str) -> LoadResult:
    return load_text(HEAD + textwrap.indent(textwrap.dedent(spec), "  "))


def config(spec: str) -> MeshConfig:
    result = load(spec)
    assert not result.issues.errors, [str(i) for i in result.issues.errors]
    assert not result.issues.warnings, [str(i) for i in result.issues.warnings]
    (resource,) = result.resources
    assert isinstance(resource, MeshConfig)
    return resource


def defaults(spec: str) -> MeshDefaults:
    return effective_defaults([config(spec)])


def make(**kw: object) -> MeshConfig:
    return MeshConfig(
        api_version="chaoskit.dev/v1alpha1",
        metadata=Metadata(name="m"),
        location=Location("<test>", 1),
        **kw,
    )  # type: ignore[arg-type]


# -- effective_defaults as a pure function --------------------------------------------------


def test_no_mesh_config_means_classic() -> None:
    assert effective_defaults([]) == MeshDefaults(
        route_timeout=15.0,
        retry=None,
        outbound_policy="ALLOW_ANY",
        connect_timeout=10.0,
    )
    assert effective_defaults(()) is CLASSIC_DEFAULTS


def test_istio_current_preset() -> None:
    d = effective_defaults([make(defaults="istio-current")])
    assert d.route_timeout is None
    assert d.retry == HTTPRetry(
        attempts=2,
        retry_on=(
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ),
    )
    assert (d.outbound_policy, d.connect_timeout) == ("ALLOW_ANY", 10.0)
    assert d == ISTIO_CURRENT_DEFAULTS


def test_first_mesh_config_wins() -> None:
    first, second = make(defaults="istio-current"), make(timeout=3.0)
    assert effective_defaults([first, second]) == ISTIO_CURRENT_DEFAULTS
    assert effective_defaults([second, first]).route_timeout == 3.0


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, CLASSIC_DEFAULTS),
        ({"timeout": 0.0}, MeshDefaults(None, None, "ALLOW_ANY", 10.0)),
        (
            {"defaults": "istio-current", "timeout": 2.0},
            MeshDefaults(2.0, ISTIO_CURRENT_DEFAULTS.retry, "ALLOW_ANY", 10.0),
        ),
        (
            {"defaults": "istio-current", "retries": HTTPRetry(attempts=0)},
            MeshDefaults(None, None, "ALLOW_ANY", 10.0),
        ),
        (
            {"retries": HTTPRetry(attempts=3)},
            MeshDefaults(15.0, HTTPRetry(attempts=3, retry_on=DEFAULT_RETRY_ON), "ALLOW_ANY", 10.0),
        ),
        (
            {"retries": HTTPRetry(attempts=1, retry_on=("5xx",))},
            MeshDefaults(15.0, HTTPRetry(attempts=1, retry_on=("5xx",)), "ALLOW_ANY", 10.0),
        ),
        (
            {"outbound_policy": "REGISTRY_ONLY", "connect_timeout": 1.5},
            MeshDefaults(15.0, None, "REGISTRY_ONLY", 1.5),
        ),
    ],
)
def test_overrides(kw: dict[str, object], expected: MeshDefaults) -> None:
    assert effective_defaults([make(**kw)]) == expected


# -- parsing --------------------------------------------------------------------------------


def test_empty_spec_is_classic() -> None:
    c = config("{}\n")
    assert (c.defaults, c.timeout, c.retries, c.outbound_policy, c.connect_timeout) == (
        "classic",
        None,
        None,
        None,
        None,
    )
    assert c.KIND == "MeshConfig" and c.ref == "MeshConfig/default/mesh"
    assert effective_defaults([c]) == CLASSIC_DEFAULTS


def test_design_example() -> None:
    d = defaults("""\
        defaults: classic               # or istio-current
        timeout: 15s                    # optional overrides
        retries: {attempts: 0}
    """)
    assert d == CLASSIC_DEFAULTS


def test_istio_current_from_yaml() -> None:
    assert defaults("defaults: istio-current\n") == ISTIO_CURRENT_DEFAULTS


@pytest.mark.parametrize("written", ["0s", "none"])
def test_timeout_disabled(written: str) -> None:
    c = config(f"timeout: {written}\n")
    assert c.timeout == 0.0
    assert effective_defaults([c]).route_timeout is None


def test_all_overrides_from_yaml() -> None:
    d = defaults("""\
        defaults: istio-current
        timeout: 30s
        retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset"}
        outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        connectTimeout: 250ms
    """)
    assert d == MeshDefaults(
        route_timeout=30.0,
        retry=HTTPRetry(attempts=3, per_try_timeout=2.0, retry_on=("5xx", "reset")),
        outbound_policy="REGISTRY_ONLY",
        connect_timeout=0.25,
    )


def test_retries_without_retry_on_use_istio_list() -> None:
    d = defaults("retries: {attempts: 4}\n")
    assert d.retry == HTTPRetry(attempts=4, retry_on=DEFAULT_RETRY_ON)
    assert d.route_timeout == 15.0


def test_outbound_policy_without_mode_is_registry_only() -> None:
    result = load("outboundTrafficPolicy: {}\n")
    assert not result.issues.errors
    (w,) = result.issues.warnings
    assert w.path == "spec.outboundTrafficPolicy" and "means REGISTRY_ONLY" in w.message
    (c,) = result.resources
    assert isinstance(c, MeshConfig)
    assert effective_defaults([c]).outbound_policy == "REGISTRY_ONLY"


def test_retry_budget_beyond_timeout_warns() -> None:
    result = load("retries: {attempts: 3, perTryTimeout: 5s}\n")
    assert not result.issues.errors
    (w,) = result.issues.warnings
    assert w.path == "spec.retries"
    assert "4 attempts × perTryTimeout (20s) exceed the default route timeout (15s)" in w.message


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ("defaults: istio-curent", "spec.defaults", 'did you mean "istio-current"'),
        ("defaults: 1", "spec.defaults", "must be a string"),
        ("timeout: 15", "spec.timeout", "not a duration"),
        ("timeout: never", "spec.timeout", "not a duration"),
        ("timeout: 0.5ms", "spec.timeout", "greater than 1ms"),
        ("retries: {attempts: -1}", "spec.retries.attempts", "cannot be negative"),
        ("retries: {attempts: 2, retryOn: '5xx, reset'}", "spec.retries.retryOn", "no spaces"),
        ("retries: {attempts: 0, perTryTimeout: 1s}", "spec.retries", "attempts are set to 0"),
        ("retries: {attempt: 2}", "spec.retries.attempt", 'did you mean "attempts"'),
        (
            "outboundTrafficPolicy: {mode: ALLOW_ALL}",
            "spec.outboundTrafficPolicy.mode",
            'did you mean "ALLOW_ANY"',
        ),
        ("outboundTrafficPolicy: ALLOW_ANY", "spec.outboundTrafficPolicy", "must be a mapping"),
        ("connectTimeout: 0s", "spec.connectTimeout", "greater than 1ms"),
        ("conectTimeout: 1s", "spec.conectTimeout", 'did you mean "connectTimeout"'),
    ],
)
def test_invalid(spec: str, path: str, fragment: str) -> None:
    result = load(spec + "\n")
    errors = [(i.path, i.message) for i in result.issues.errors]
    assert len(errors) == 1 and errors[0][0] == path and fragment in errors[0][1], errors
    assert result.issues.errors[0].location.line == 5
    (resource,) = result.resources
    assert isinstance(resource, MeshConfig)
