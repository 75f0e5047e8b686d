"""Visibility: Sidecar selection, exportTo, host names, cluster existence."""

from __future__ import annotations

import pytest

from chaoskit.config.http_route import Destination
from chaoskit.config.mesh_config import ALLOW_ANY, CLASSIC_DEFAULTS, REGISTRY_ONLY
from chaoskit.routing.decision import ClusterKey
from chaoskit.routing.request import Workload
from chaoskit.routing.scope import (
    Scope,
    host_candidates,
    labels_match,
    outbound_policy,
    sidecar_for,
)

from .helpers import RATINGS, REVIEWS, build, doc


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("reviews", "default", ("reviews", "reviews.default.svc.cluster.local")),
        ("reviews", "prod", ("reviews", "reviews.prod.svc.cluster.local")),
        ("reviews.prod", "default", ("reviews.prod", "reviews.prod.svc.cluster.local")),
        ("reviews.prod.svc", "default", ("reviews.prod.svc", "reviews.prod.svc.cluster.local")),
        ("Reviews.Prod.svc.cluster.local.", "x", ("reviews.prod.svc.cluster.local",)),
        ("www.example.com", "default", ("www.example.com",)),
        ("a.b.c", "default", ("a.b.c",)),
        ("10.0.0.1", "default", ("10.0.0.1",)),
        ("", "default", ("",)),
    ],
)
def test_host_candidates(host: str, namespace: str, expected: tuple[str, ...]) -> None:
    assert host_candidates(host, namespace) == expected


def test_labels_match() -> None:
    assert labels_match({}, {})
    assert labels_match({"a": "1"}, {"a": "1", "b": "2"})
    assert not labels_match({"a": "1"}, {"a": "2"})


SIDECARS = [
    doc(
        "Sidecar",
        "selected",
        "workloadSelector: {labels: {app: reviews}}\negress: [{hosts: ['./*']}]",
    ),
    doc("Sidecar", "default", "egress: [{hosts: ['./*']}]"),
    doc("Sidecar", "root", "egress: [{hosts: ['*/*']}]", namespace="istio-system"),
    doc(
        "Sidecar",
        "root-selected",
        "workloadSelector: {labels: {app: x}}\negress: [{hosts: ['*/*']}]",
        namespace="istio-system",
    ),
]


def test_sidecar_precedence() -> None:
    sidecars = build(*SIDECARS).sidecars

    def name(w: Workload) -> str | None:
        s = sidecar_for(sidecars, w)
        return None if s is None else s.name

    assert name(Workload("r", "default", {"app": "reviews"})) == "selected"
    assert name(Workload("p", "default", {"app": "productpage"})) == "default"
    assert name(Workload("o", "other", {"app": "x"})) == "root"
    assert sidecar_for(sidecars[:2], Workload("o", "other")) is None


def test_outbound_policy() -> None:
    mesh = build(doc("Sidecar", "default", "outboundTrafficPolicy: {mode: REGISTRY_ONLY}"))
    assert outbound_policy(mesh.sidecars[0], CLASSIC_DEFAULTS).mode == REGISTRY_ONLY
    assert outbound_policy(None, CLASSIC_DEFAULTS).mode == ALLOW_ANY


def dest(host: str, subset: str | None = None, port: int | None = None) -> Destination:
    fqdn = host if "." in host else f"{host}.default.svc.cluster.local"
    return Destination(host, fqdn, subset, port)


def test_scope_cluster() -> None:
    mesh = build(
        doc(
            "ServiceEntry",
            "multi",
            """
            hosts: [api.example.com]
            ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: admin, protocol: HTTP}]
            resolution: DNS
            """,
        )
    )
    scope = Scope(mesh, "default", None, 9080)
    assert scope.cluster(dest("reviews", "v2")) == (ClusterKey(REVIEWS, 9080, "v2"), True)
    assert scope.cluster(dest("reviews", "v9")) == (ClusterKey(REVIEWS, 9080, "v9"), False)
    assert scope.cluster(dest("ratings", "v1")) == (ClusterKey(RATINGS, 9080, "v1"), False)  # no DR
    assert scope.cluster(dest("ratings", port=1234)) == (ClusterKey(RATINGS, 1234), False)
    assert scope.cluster(dest("nope")) == (
        ClusterKey("nope.default.svc.cluster.local", 9080),
        False,
    )
    # Several ports: destination.port, else the proxy's port.
    assert scope.cluster(dest("api.example.com", port=9090)) == (
        ClusterKey("api.example.com", 9090),
        True,
    )
    assert scope.cluster(dest("api.example.com")) == (ClusterKey("api.example.com", 9080), False)
    at_8080 = Scope(mesh, "default", None, 8080)
    assert at_8080.cluster(dest("api.example.com")) == (ClusterKey("api.example.com", 8080), True)


def test_scope_visibility() -> None:
    mesh = build(
        doc(
            "ServiceEntry",
            "private",
            """
            hosts: [private.example.com]
            exportTo: ["."]
            ports: [{number: 80, name: http, protocol: HTTP}]
            resolution: DNS
            """,
            namespace="team",
        ),
        doc("Sidecar", "default", "egress: [{hosts: ['./reviews.default.svc.cluster.local']}]"),
    )
    private = mesh.find_service("private.example.com")
    assert private is not None
    assert Scope(mesh, "team", None, 80).service_visible(private)
    assert not Scope(mesh, "default", None, 80).service_visible(private)
    sidecar = mesh.sidecars[0]
    scoped = Scope(mesh, "default", sidecar, 9080)
    assert scoped.cluster(dest("reviews"))[1]
    assert not scoped.cluster(dest("ratings"))[1]  # not imported: the proxy has no cluster
    assert scoped.host_visible(REVIEWS, "default", ())
    assert not scoped.host_visible(REVIEWS, "default", ("other",))
    assert not scoped.host_visible(RATINGS, "default", ())
