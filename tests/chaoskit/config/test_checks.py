import pytest

from chaoskit.config.mesh import labels_match

from .helpers import check, doc, messages


def has(found, path, fragment):
    return any(p == path and fragment in m for p, m in found)


def test_base_services_are_clean():
    v = check()
    assert v.ok and not v.issues, [str(i) for i in v.issues]


def test_subset_must_be_defined():
    v = check(
        doc(
            "VirtualService",
            "reviews",
            """
        hosts: [reviews]
        http: [{route: [{destination: {host: reviews, subset: v4}}]}]
    """,
        )
    )
    # Istio applies it and answers 503 NC at run time: a warning (the proxy still loads it)
    # with istioctl analyze's ReferencedResourceNotFound code, not an error.
    assert v.ok and not v.issues.errors
    found = messages(v, "warning")
    assert has(found, "spec.http[0].route[0].destination.subset", "subset 'v4' is not defined")
    assert has(found, "spec.http[0].route[0].destination.subset", "defined: v1, v2, v3")
    assert [i.code for i in v.issues.warnings] == ["IST0101"]
    assert str(v.issues.warnings[0]).endswith("Istio answers 503 NC [IST0101]")


def test_cluster_host_must_be_in_registry_but_external_is_a_warning():
    v = check(
        doc(
            "VirtualService",
            "x",
            """
        hosts: [x]
        http:
        - route: [{destination: {host: details}}]
        - route: [{destination: {host: api.example.com}}]
    """,
        )
    )
    assert has(messages(v), "spec.http[0].route[0].destination.host", "not in the registry")
    assert has(
        messages(v, "warning"), "spec.http[1].route[0].destination.host", "add a ServiceEntry"
    )


def test_gateway_must_exist():
    v = check(
        doc(
            "VirtualService",
            "x",
            """
        hosts: [web.example.com]
        gateways: [nope]
        http: [{route: [{destination: {host: reviews}}]}]
    """,
        )
    )
    assert has(messages(v), "spec.gateways", "gateway 'default/nope' does not exist")


def test_two_mesh_virtual_services_for_one_host_conflict():
    a = doc(
        "VirtualService", "a", "hosts: [reviews]\nhttp: [{route: [{destination: {host: reviews}}]}]"
    )
    b = doc(
        "VirtualService",
        "b",
        "hosts: [reviews.default.svc.cluster.local]\nhttp: [{route: [{destination: {host: reviews}}]}]",
    )
    assert has(messages(check(a, b)), "spec.hosts", "also routed by VirtualService/default/a")


def test_mesh_virtual_services_conflict_only_where_both_are_exported():
    """istio/istio pkg/config/analysis/analyzers/testdata/
    virtualservice_conflictingmeshgatewayhosts_with_exportto.yaml (cases a-c; chaoskit reports
    the later VirtualService of each pair)."""

    def vs(name: str, ns: str, host: str, export_to: str = "") -> str:
        spec = f"hosts: ['{host}']\nhttp: [{{route: [{{destination: {{host: reviews.default}}}}]}}]"
        return doc(
            "VirtualService",
            name,
            spec + (f"\nexportTo: {export_to}" if export_to else ""),
            namespace=ns,
        )

    v = check(
        vs("productpage", "foo", "*.productpage"),
        vs("productpage", "bar", "*.productpage"),
        vs("productpage-b", "foo", "*.productpage.b", "[foo]"),
        vs("productpage-b", "bar", "*.productpage.b", '["."]'),
        vs("productpage-c", "foo", "*.productpage.c", "[foo]"),
        vs("productpage-c", "bar", "*.productpage.c", '["*"]'),
    )
    assert [(i.resource, i.code) for i in v.issues.errors] == [
        ("VirtualService/bar/productpage", "IST0109"),
        ("VirtualService/bar/productpage-c", "IST0109"),
    ]


def test_same_name_replaces_instead_of_conflicting():
    a = doc(
        "VirtualService",
        "reviews",
        "hosts: [reviews]\nhttp: [{route: [{destination: {host: reviews, subset: v1}}]}]",
    )
    b = doc(
        "VirtualService",
        "reviews",
        "hosts: [reviews]\nhttp: [{route: [{destination: {host: reviews, subset: v2}}]}]",
    )
    v = check(a, b)
    assert v.ok and not v.issues.warnings
    (vs,) = v.mesh.virtual_services
    assert vs.http[0].route[0].destination.subset == "v2"


def test_port_required_when_service_has_several():
    se = doc(
        "ServiceEntry",
        "multi",
        """
        hosts: [multi]
        ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: admin, protocol: HTTP}]
        resolution: STATIC
        endpoints: [{address: 127.0.0.1}]
    """,
    )
    vs = doc(
        "VirtualService",
        "multi",
        """
        hosts: [multi]
        http:
        - route: [{destination: {host: multi}}]
        - route: [{destination: {host: multi, port: {number: 81}}}]
    """,
    )
    found = messages(check(se, vs))
    assert has(found, "spec.http[0].route[0].destination.port", "destination.port is required")
    assert has(found, "spec.http[1].route[0].destination.port.number", "has no port 81")


def test_outlier_detection_that_can_never_eject():
    dr = doc(
        "DestinationRule",
        "ratings",
        """
        host: ratings
        trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}}
    """,
    )
    warnings = messages(check(dr), "warning")
    assert has(
        warnings, "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "can never eject"
    )
    fixed = dr.replace(
        "consecutive5xxErrors: 1}", "consecutive5xxErrors: 1, maxEjectionPercent: 100}"
    )
    assert not messages(check(fixed), "warning")


def test_subset_that_selects_nothing_and_rule_nothing_routes_to():
    dr = doc(
        "DestinationRule",
        "reviews-extra",
        """
        host: reviews
        subsets: [{name: v9, labels: {version: v9}}]
    """,
    )
    assert has(messages(check(dr), "warning"), "spec.subsets[0].labels", "selects no endpoint")
    orphan = doc(
        "DestinationRule", "orphan", "host: nowhere\nsubsets: [{name: v1, labels: {version: v1}}]"
    )
    assert has(messages(check(orphan), "warning"), "spec.host", "nothing routes to")


def test_upstream_fault_targets_must_exist():
    uf = doc(
        "UpstreamFault",
        "f",
        "host: payments\nabort: {httpStatus: 503}",
        api="chaoskit.dev/v1alpha1",
    )
    assert has(messages(check(uf)), "spec.host", "not in the registry")
    uf2 = doc(
        "UpstreamFault",
        "g",
        "host: reviews\nsubset: v9\nabort: {httpStatus: 503}",
        api="chaoskit.dev/v1alpha1",
    )
    assert has(messages(check(uf2)), "spec.subset", "not defined")


def test_only_one_mesh_config():
    a = doc("MeshConfig", "a", "defaults: classic", api="chaoskit.dev/v1alpha1")
    b = doc("MeshConfig", "b", "defaults: istio-current", api="chaoskit.dev/v1alpha1")
    assert has(messages(check(a, b)), "metadata.name", "only one MeshConfig")


def test_source_labels_without_workload_warns():
    vs = doc(
        "VirtualService",
        "reviews",
        """
        hosts: [reviews]
        http:
        - match: [{sourceLabels: {app: productpage}}]
          route: [{destination: {host: reviews, subset: v2}}]
        - route: [{destination: {host: reviews, subset: v1}}]
    """,
    )
    assert has(
        messages(check(vs), "warning"), "spec.http[0].match[0].sourceLabels", "no WorkloadEntry"
    )
    we = doc("WorkloadEntry", "productpage", "labels: {app: productpage}")
    assert not messages(check(vs, we), "warning")


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"a": "1"}, {"a": "1", "b": "2"}, True),
        ({"a": "1"}, {"a": "2"}, False),
        ({"a": "1"}, {}, False),
    ],
)
def test_labels_match(selector, labels, expected):
    assert labels_match(selector, labels) is expected
