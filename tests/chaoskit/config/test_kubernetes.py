"""Kubernetes manifests as the registry: Bookinfo's Services and Deployments, mapped to local
ports, give the same registry as the hand-written ServiceEntries of the demo mesh."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chaoskit.config import load_paths, load_text, validate
from chaoskit.config.kubernetes import parse_address
from chaoskit.config.mesh import Mesh, build_mesh

REPO = Path(__file__).resolve().parents[3]
BOOKINFO = REPO / "experiments" / "bookinfo"
NETWORKING = [BOOKINFO / "mesh" / f for f in ("destination-rules.yaml", "virtual-services.yaml")]


def mesh_of(*paths: Path) -> Mesh:
    result = load_paths(paths)
    assert not result.issues.errors, result.issues.errors
    return build_mesh(result.resources, result.issues)


def registry(mesh: Mesh) -> dict[str, tuple[object, ...]]:
    """Each host's ports and endpoints, in a form two registries can be compared by."""
    return {
        host: (
            tuple((p.number, p.name, p.protocol) for p in svc.entry.ports),
            sorted(
                (e.address, tuple(sorted(e.ports.items())), tuple(sorted(e.labels.items())))
                for e in svc.entry.endpoints
            ),
        )
        for host, svc in mesh.services.items()
    }


def test_bookinfo_manifests_give_the_registry_of_the_demo_mesh() -> None:
    from_kube = mesh_of(BOOKINFO / "kube", *NETWORKING)
    by_hand = mesh_of(BOOKINFO / "mesh" / "services.yaml", *NETWORKING)
    assert registry(from_kube) == registry(by_hand)
    assert set(from_kube.services) == {
        f"{s}.default.svc.cluster.local" for s in ("details", "ratings", "reviews", "productpage")
    }
    # every Deployment is a workload a caller can name, with its pods' labels and account
    reviews_v2 = from_kube.workloads_by_name["reviews-v2"]
    assert reviews_v2.labels == {"app": "reviews", "version": "v2"}
    assert reviews_v2.service_account == "bookinfo-reviews"
    assert {tuple(sorted(w.labels.items())) for w in from_kube.workload_entries} == {
        tuple(sorted(w.labels.items())) for w in by_hand.workload_entries
    }


def k8s(*parts: str) -> tuple[Mesh, list[tuple[str, str, str]]]:
    result = load_text("".join(textwrap.dedent(p) for p in parts), "k8s.yaml")
    mesh = build_mesh(result.resources, result.issues)
    issues = [
        (i.severity, i.path, i.message) for i in [*result.issues.errors, *result.issues.warnings]
    ]
    return mesh, issues


SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  type: ClusterIP
  clusterIP: 10.0.0.7
  selector: {app: api}
  ports:
  - {name: http-web, port: 80, targetPort: 8080}
  - {name: grpc, port: 9090, targetPort: grpc}
  - {port: 7000, appProtocol: http2}
  - {name: metrics, port: 9100}
  - {name: db, port: 3306}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-v1, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, version: v1}, annotations: {sidecar.istio.io/inject: "true"}}
    spec:
      serviceAccountName: api
      containers: [{name: api, image: api:1, ports: [{containerPort: 8080}]}]
---
"""


def test_protocol_selection_and_ports_by_name() -> None:
    mesh, issues = k8s(
        SERVICE,
        """\
        apiVersion: chaoskit.dev/v1alpha1
        kind: LocalWorkloads
        metadata: {name: here, namespace: shop}
        spec:
          workloads:
          - {name: api-v1, port: 18080, ports: {grpc: 19090, "7000": 17000}}
        """,
    )
    assert issues == []
    svc = mesh.find_service("api.shop.svc.cluster.local")
    assert svc is not None
    # Istio's protocol selection (ConvertProtocol, pkg/config/kube/conversion.go): appProtocol,
    # else the name's prefix, else TCP on a well-known port; UDP is not proxied
    assert [(p.number, p.name, p.protocol) for p in svc.entry.ports] == [
        (80, "http-web", "HTTP"), (9090, "grpc", "GRPC"), (7000, "port-7000", "HTTP2"),
        (9100, "metrics", None), (3306, "db", "TCP"),
    ]  # fmt: skip
    (endpoint,) = svc.entry.endpoints
    assert endpoint.address == "127.0.0.1"
    assert dict(endpoint.ports) == {
        "http-web": 18080, "grpc": 19090, "port-7000": 17000, "metrics": 18080, "db": 18080,
    }  # fmt: skip
    assert endpoint.labels == {"app": "api", "version": "v1"}


def test_what_cannot_be_mapped_is_said() -> None:
    _, issues = k8s(
        SERVICE,
        """\
        apiVersion: v1
        kind: Service
        metadata: {name: legacy, namespace: shop}
        spec: {type: ExternalName, externalName: legacy.example.com}
        ---
        apiVersion: chaoskit.dev/v1alpha1
        kind: LocalWorkloads
        metadata: {name: here, namespace: shop}
        spec:
          workloads:
          - {name: api-v2, port: 18080}
          - {name: worker}
        """,
    )
    assert ("error", "spec.workloads[1]", 'either "port" or "ports" is required: where the '
            "workload listens") in issues  # fmt: skip
    warnings = [(path, message) for severity, path, message in issues if severity == "warning"]
    assert any(p == "metadata.name" and "no LocalWorkloads entry says where api-v1 runs" in m
               for p, m in warnings)  # fmt: skip
    assert any("no Deployment 'api-v2'" in m and 'did you mean "api-v1"' in m for _, m in warnings)
    assert any(p == "spec.type" and "ExternalName" in m for p, m in warnings)


def test_a_service_entry_applied_later_replaces_the_generated_one() -> None:
    mesh, _ = k8s(
        SERVICE,
        """\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: api, namespace: shop}
        spec:
          hosts: [api]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints: [{address: 127.0.0.2, ports: {http: 1234}}]
        """,
    )
    svc = mesh.find_service("api.shop.svc.cluster.local")
    assert svc is not None and [e.address for e in svc.entry.endpoints] == ["127.0.0.2"]


def test_a_service_selects_only_deployments_of_its_namespace() -> None:
    other = SERVICE.replace("name: api-v1, namespace: shop", "name: api-v1, namespace: other")
    mesh, _ = k8s(
        other,
        """\
        apiVersion: chaoskit.dev/v1alpha1
        kind: LocalWorkloads
        metadata: {name: here, namespace: other}
        spec: {workloads: [{name: api-v1, port: 18080}]}
        """,
    )
    svc = mesh.find_service("api.shop.svc.cluster.local")
    assert svc is not None and svc.entry.endpoints == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9081", ("127.0.0.1", 9081)), ("[::1]:80", ("::1", 80)),
     ("localhost:1", ("localhost", 1))],
)  # fmt: skip
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":80", "host:0", "host:65536", "a:b"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def kube_service(name: str, namespace: str, export_to: str) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata:
          name: {name}
          namespace: {namespace}
          annotations: {{networking.istio.io/exportTo: "{export_to}"}}
        spec:
          ports: [{{port: 9080, name: http}}]
          selector: {{app: {name}}}
        ---
        """)


def routing_vs(name: str, namespace: str, dest: str, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          hosts: [{name}]
          http: [{{route: [{{destination: {{host: {dest}}}}}]}}]
        {extra}---
        """)


def test_the_export_to_annotation_scopes_a_kubernetes_service() -> None:
    """istio/istio pkg/config/analysis/analyzers/testdata/virtualservice_destinationhosts.yaml
    (cross-namespace-details, banana-details, hello, hello-export-to-bogus): the Service is seen
    only where its networking.istio.io/exportTo annotation exports it."""
    text = (
        kube_service("details", "default", "banana")
        + kube_service("hello", "hello", "hello1,hello2,.")
        + routing_vs("cross-namespace-details", "istio-system", "details.default.svc.cluster.local")
        + routing_vs("banana-details", "banana", "details.default.svc.cluster.local")
        + routing_vs("hello", "hello1", "hello.hello.svc.cluster.local")
        + routing_vs("hello", "hello2", "hello.hello.svc.cluster.local")
        + routing_vs("hello", "hello", "hello.hello.svc.cluster.local")
        + routing_vs(
            "hello-export-to-bogus",
            "hello",
            "hello.hello.svc.cluster.local",
            "  exportTo: [bogus]\n",
        )
    )
    v = validate([load_text(text)])
    assert v.ok, [str(i) for i in v.issues.errors]
    assert [i.resource for i in v.issues.warnings if i.code == "IST0101"] == [
        "VirtualService/istio-system/cross-namespace-details",
        "VirtualService/hello/hello-export-to-bogus",
    ]
