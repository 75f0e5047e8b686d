"""Table test adapted from istio/istio pkg/config/analysis/analyzers/testdata/sidecar-selector.yaml
(expectations from analyzers_test.go): its Pods become WorkloadEntries."""

from tests.chaoskit.config.helpers import check, doc


def workload(name: str, labels: str, namespace: str = "default") -> str:
    return doc("WorkloadEntry", name, f"labels: {labels}", namespace=namespace)


def sidecar(name: str, labels: str, namespace: str = "default") -> str:
    return doc(
        "Sidecar",
        name,
        f"workloadSelector: {{labels: {labels}}}\negress: [{{hosts: ['./*']}}]",
        namespace=namespace,
    )


SIDECAR_SELECTOR = [
    workload("productpage", "{app: productpage}"),
    workload("productpage-other", "{app: productpage}", namespace="other"),
    workload("reviews", "{app: reviews}"),
    workload("ratings", "{app: ratings-app, myapp: ratings-myapp}"),
    sidecar("maps-correctly-no-conflicts", "{app: productpage}"),
    sidecar("maps-to-nonexistent", "{app: bogus}"),
    sidecar("maps-to-different-ns", "{app: reviews}", namespace="other"),
    sidecar("dupe-1", "{app: reviews}"),
    sidecar("dupe-2", "{app: reviews}"),
    sidecar("overlap-1", "{app: ratings-app}"),
    sidecar("overlap-2", "{myapp: ratings-myapp}"),
]


def test_sidecar_selector_findings_ist0101_ist0110():
    v = check(*SIDECAR_SELECTOR)
    assert v.ok
    assert sorted((i.code, i.resource) for i in v.issues.warnings) == [
        ("IST0101", "Sidecar/default/maps-to-nonexistent"),
        ("IST0101", "Sidecar/other/maps-to-different-ns"),
        ("IST0110", "Sidecar/default/dupe-1"),
        ("IST0110", "Sidecar/default/dupe-2"),
        ("IST0110", "Sidecar/default/overlap-1"),
        ("IST0110", "Sidecar/default/overlap-2"),
    ]


def test_egress_proxy_is_deprecated_ist0002():
    """istio/istio deprecation/deprecation.go: Sidecar outboundTrafficPolicy.egressProxy."""
    v = check(
        doc(
            "Sidecar",
            "default",
            "outboundTrafficPolicy:\n"
            "  mode: ALLOW_ANY\n"
            "  egressProxy: {host: ratings, port: {number: 9080}}",
        )
    )
    assert v.ok
    assert [(i.code, i.path) for i in v.issues.warnings] == [
        ("IST0002", "spec.outboundTrafficPolicy.egressProxy")
    ]
