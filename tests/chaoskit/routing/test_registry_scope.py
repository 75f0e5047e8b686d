"""Registry lookups only see validated, exported ServiceEntries (issue #15 item 4).

istio/istio ``pkg/config/validation/validation.go`` ``ValidateServiceEntry`` rejects
``hosts: ["*"]``, so such an entry never reaches a proxy; istio/api ``service_entry.proto``
``export_to`` hides an entry from proxies of other namespaces.
"""

from __future__ import annotations

import pytest

from chaoskit.config import load_text, validate
from chaoskit.config.mesh import Mesh
from chaoskit.errors import ConfigError
from chaoskit.proxy.api import Proxy
from chaoskit.routing.decision import Forward
from chaoskit.routing.request import Workload

from .helpers import build, doc, route

STAR = doc(
    "ServiceEntry",
    "everything",
    """
    hosts: ["*"]
    ports: [{number: 80, name: http, protocol: HTTP}]
    resolution: STATIC
    endpoints: [{address: 127.0.0.1, ports: {http: 9999}}]
    """,
)

PRIVATE = doc(
    "ServiceEntry",
    "private",
    """
    hosts: [private.example.com]
    exportTo: [a]
    ports: [{number: 80, name: http, protocol: HTTP}]
    resolution: STATIC
    endpoints: [{address: 127.0.0.1, ports: {http: 9999}}]
    """,
    namespace="a",
)


def test_star_service_entry_is_refused_before_any_proxy_sees_it() -> None:
    v = validate([load_text(STAR, "star.yaml")])
    assert not v.ok
    with pytest.raises(ConfigError, match="invalid host"):
        Proxy(STAR)


def test_star_service_entry_cannot_be_applied_over_a_running_config() -> None:
    proxy = Proxy(PRIVATE)
    with pytest.raises(ConfigError, match="invalid host"):
        proxy.apply(STAR)
    # The loaded mesh is unchanged: no catch-all entry in the registry.
    assert proxy.validation.mesh.find_service("anything.example.com") is None


def test_export_to_hides_the_entry_from_other_namespaces() -> None:
    mesh = build(PRIVATE, services=False)
    inside = route(mesh, "http://private.example.com/", source=Workload("x", "a"))
    assert isinstance(inside, Forward) and inside.cluster is not None
    assert inside.cluster.host == "private.example.com"
    outside = route(mesh, "http://private.example.com/", source=Workload("y", "b"))
    assert not (isinstance(outside, Forward) and outside.cluster is not None)


# -- several namespaces define one host ---------------------------------------------------------
# istio/istio pilot/pkg/model/push_context.go ``servicesExportedToNamespace`` (entries exported to
# the proxy's namespace by name or ".", then public ones, oldest first) and sidecar.go
# ``appendSidecarServices`` (the first one per host name wins; a Kubernetes Service beats them).

API = "api.example.com"


def api_entry(namespace: str, port: int, export_to: str = "") -> str:
    """A ServiceEntry ``api`` for ``API`` in ``namespace``, one endpoint on ``port``."""
    return doc(
        "ServiceEntry",
        "api",
        f"hosts: [{API}]\n"
        + (f"exportTo: {export_to}\n" if export_to else "")
        + "ports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\n"
        + f"endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]",
        namespace=namespace,
    )


def entry_for(mesh: Mesh, namespace: str, listener: str = "mesh") -> str:
    """The ServiceEntry whose cluster a caller of ``namespace`` reaches for ``API``."""
    d = route(mesh, f"http://{API}/", listener, source=Workload("caller", namespace))
    assert isinstance(d, Forward) and d.cluster is not None, d
    return d.cluster.service_entry


def test_each_namespace_sees_its_own_entry_of_a_shared_host() -> None:
    mesh = build(
        api_entry("c", 9103),  # public, and the oldest
        api_entry("a", 9101, '["."]'),
        api_entry("b", 9102, '["."]'),
        services=False,
    )
    assert entry_for(mesh, "a") == "ServiceEntry/a/api"
    assert entry_for(mesh, "b") == "ServiceEntry/b/api"
    assert entry_for(mesh, "d") == "ServiceEntry/c/api"


def test_an_entry_exported_by_name_beats_an_older_public_one() -> None:
    mesh = build(api_entry("c", 9103), api_entry("a", 9101, "[b]"), services=False)
    assert entry_for(mesh, "b") == "ServiceEntry/a/api"
    assert entry_for(mesh, "c") == "ServiceEntry/c/api"
    assert entry_for(mesh, "a") == "ServiceEntry/c/api"  # not exported to its own namespace


def test_among_public_entries_the_first_loaded_wins() -> None:
    mesh = build(api_entry("z", 9103), api_entry("a", 9101), services=False)
    assert entry_for(mesh, "a") == "ServiceEntry/z/api"
    assert entry_for(mesh, "q") == "ServiceEntry/z/api"


def test_the_sidecar_imports_choose_before_precedence() -> None:
    sidecar = doc("Sidecar", "default", 'egress: [{hosts: ["c/*"]}]', namespace="d")
    mesh = build(api_entry("c", 9103), api_entry("b", 9102, "[b, d]"), sidecar, services=False)
    assert entry_for(mesh, "d") == "ServiceEntry/c/api"  # b's entry is closer but not imported
    assert entry_for(mesh, "b") == "ServiceEntry/b/api"


def test_a_gateway_routes_with_the_entry_its_namespace_sees() -> None:
    gateway = doc(
        "Gateway",
        "gw",
        "selector: {istio: ingressgateway}\n"
        "servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]",
        namespace="a",
    )
    bound = doc(
        "VirtualService",
        "edge",
        f"hosts: ['*']\ngateways: [gw]\nhttp: [{{route: [{{destination: {{host: {API}}}}}]}}]",
        namespace="a",
    )
    mesh = build(
        api_entry("c", 9103), api_entry("a", 9101, '["."]'), gateway, bound, services=False
    )
    assert entry_for(mesh, "default", "gateway:8080") == "ServiceEntry/a/api"


def test_validate_warns_when_a_bound_gateway_does_not_see_the_destination() -> None:
    gateway = doc(
        "Gateway",
        "gw",
        "selector: {istio: ingressgateway}\n"
        "servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]",
        namespace="istio-system",
    )
    bound = doc(
        "VirtualService",
        "edge",
        f"hosts: ['*']\ngateways: [istio-system/gw]\n"
        f"http: [{{route: [{{destination: {{host: {API}}}}}]}}]",
        namespace="a",
    )
    v = validate([load_text(api_entry("a", 9101, '["."]')), load_text(gateway), load_text(bound)])
    assert v.ok
    assert [i.message for i in v.issues.warnings if i.path.endswith(".host")] == [
        f"host '{API}' ({API}) is not exported to namespace istio-system of "
        "Gateway/istio-system/gw, which routes with this VirtualService: its requests get 503 NC"
    ]
    decision = route(v.mesh, f"http://{API}/", "gateway:8080")
    assert not (isinstance(decision, Forward) and decision.cluster is not None)


def test_a_host_defined_once_keeps_istio_cluster_keys() -> None:
    mesh = build(api_entry("c", 9103), services=False)
    assert entry_for(mesh, "a") == ""


def test_validate_warns_when_the_destination_is_not_exported_to_the_virtual_service() -> None:
    def to_api(name: str, namespace: str, extra: str = "") -> str:
        spec = f"hosts: [{name}.example.com]\n"
        spec += f"http: [{{route: [{{destination: {{host: {API}}}}}]}}]{extra}"
        return doc("VirtualService", name, spec, namespace=namespace)

    v = validate(
        [
            load_text(api_entry("a", 9101, '["."]') + "---\n" + api_entry("b", 9102, "[b]")),
            load_text(to_api("in-a", "a")),
            load_text(to_api("in-d", "d")),
            load_text(to_api("to-b", "d", "\nexportTo: [b]")),
        ]
    )
    assert v.ok
    found = [(i.resource, i.code) for i in v.issues.warnings if i.path.endswith(".host")]
    assert found == [("VirtualService/d/in-d", "IST0101")]
    message = next(i.message for i in v.issues.warnings if i.resource == "VirtualService/d/in-d")
    assert message == (
        f"host '{API}' ({API}) is defined by ServiceEntry/a/api, which is not exported to d "
        "(exportTo: .): callers there get 503 NC"
    )
