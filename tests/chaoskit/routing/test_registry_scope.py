"""Registry lookups only see validated, exported ServiceEntries (issue #15 item 4).

istio/istio ``pkg/config/validation/validation.go`` ``ValidateServiceEntry`` rejects
``hosts: ["*"]``, so such an entry never reaches a proxy; istio/api ``service_entry.proto``
``export_to`` hides an entry from proxies of other namespaces.
"""

from __future__ import annotations

import pytest

from chaoskit.config import load_text, validate
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
