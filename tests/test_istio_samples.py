"""Istio's own Bookinfo samples validate and load in the proxy unchanged (issue #15, "Done when").

Every file of istio/istio ``samples/bookinfo/networking/`` (vendored in tests/data/istio-samples/)
is validated over Istio's Kubernetes manifests (``samples/bookinfo/platform/kube/``) plus the one
thing a user adds, ``local.yaml`` (where each Deployment runs), and ``destination-rule-all.yaml``
(Istio's tasks apply it first), then applied to a running proxy the way ``kubectl apply -f`` is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoskit.config import load_paths, validate
from chaoskit.proxy.api import Proxy

SAMPLES = Path(__file__).resolve().parent / "data" / "istio-samples"
KUBE = SAMPLES / "platform" / "kube"
NETWORKING = sorted((SAMPLES / "networking").glob("*.yaml"))
BASE = [KUBE / "bookinfo.yaml", SAMPLES / "local.yaml"]
#: What the Istio task that uses a sample installs first, besides bookinfo.yaml.
NEEDS = {
    "virtual-service-details-v2.yaml": [KUBE / "bookinfo-details-v2.yaml"],
    "virtual-service-ratings-db.yaml": [
        KUBE / "bookinfo-ratings-v2.yaml",
        KUBE / "bookinfo-db.yaml",
    ],
    "virtual-service-ratings-mysql.yaml": [
        KUBE / "bookinfo-ratings-v2-mysql.yaml",
        KUBE / "bookinfo-mysql.yaml",
    ],
    "virtual-service-ratings-mysql-vm.yaml": [KUBE / "bookinfo-ratings-v2-mysql-vm.yaml"],
    "certmanager-gateway.yaml": [SAMPLES / "cert-manager.yaml"],
}
RULES = SAMPLES / "networking" / "destination-rule-all.yaml"


def sources(sample: Path) -> list[Path]:
    """The files applied in order for ``sample``."""
    rules = [RULES] if sample != RULES else []
    return [*BASE, *NEEDS.get(sample.name, []), *rules, sample]


def test_every_networking_sample_is_here() -> None:
    assert len(NETWORKING) == 21
    assert set(NEEDS) <= {p.name for p in NETWORKING}


@pytest.mark.parametrize("sample", NETWORKING, ids=[p.name for p in NETWORKING])
def test_sample_validates_over_the_kubernetes_manifests(sample: Path) -> None:
    v = validate([load_paths([p]) for p in sources(sample)])
    assert not v.unreadable
    assert [str(i) for i in v.issues.errors] == []
    # Istio's analyzers report the rest too: subsets whose Deployment is not installed (IST0173)
    # and fault-injection-details-v1's second rule without match (IST0130).
    coded = {i.code for i in v.issues.warnings if i.code}
    assert coded <= {"IST0130", "IST0173"}, coded
    sample_refs = {r.ref for r in load_paths([sample]).resources}
    assert sample_refs and sample_refs <= {r.ref for r in v.mesh.resources}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(*BASE, seed=1, state_dir=state, gateway_ports={80: 0, 8080: 0}) as p:
        yield p


@pytest.mark.parametrize("sample", NETWORKING, ids=[p.name for p in NETWORKING])
def test_sample_loads_in_a_running_proxy(proxy: Proxy, sample: Path) -> None:
    proxy.apply(*sources(sample)[len(BASE) :])
    loaded = {r.ref for r in proxy.validation.mesh.resources}
    assert {r.ref for r in load_paths([sample]).resources} <= loaded
