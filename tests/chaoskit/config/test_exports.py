"""Which definition of a host a namespace sees: istio/istio pilot/pkg/model/push_context.go
(``servicesExportedToNamespace``, ``initServiceRegistry``) and sidecar.go
(``appendSidecarServices``)."""

import pytest

from chaoskit.config import load_text, validate
from chaoskit.config.exports import exported_to, precedence
from tests.chaoskit.config.helpers import doc

HOST = "reviews.default.svc.cluster.local"


@pytest.mark.parametrize(
    ("export_to", "expected"),
    [((), (1, 1)), (("*",), (1, 1)), ((".",), (1, 0)), (("b",), (1, 0))],
)
def test_private_entries_come_before_public_ones(export_to, expected) -> None:
    assert precedence(export_to) == expected
    assert precedence(export_to, from_kubernetes=True) < precedence(())


@pytest.mark.parametrize(
    ("export_to", "owner", "viewer", "expected"),
    [
        ((), "a", "b", True),
        (("*",), "a", "b", True),
        ((".",), "a", "a", True),
        ((".",), "a", "b", False),
        (("~",), "a", "a", False),
        (("b", "c"), "a", "c", True),
        (("b", "c"), "a", "a", False),
    ],
)
def test_exported_to(export_to: tuple[str, ...], owner: str, viewer: str, expected: bool) -> None:
    assert exported_to(export_to, owner, viewer) is expected


KUBE_REVIEWS = """\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: reviews}
"""


def test_a_kubernetes_service_beats_an_older_service_entry_of_its_name() -> None:
    squatter = doc(
        "ServiceEntry",
        "squat",
        f"hosts: [{HOST}]\nports: [{{number: 9080, name: http, protocol: HTTP}}]\n"
        "resolution: STATIC\nendpoints: [{address: 127.0.0.1, ports: {http: 1}}]",
        namespace="other",
    )
    v = validate([load_text(squatter), load_text(KUBE_REVIEWS)])
    mesh = v.mesh
    assert mesh.find_service(HOST).entry.ref == "ServiceEntry/other/squat"  # first loaded
    for namespace in ("default", "other", "x"):
        seen = mesh.visible_service(HOST, namespace)
        assert seen is not None and seen.entry.from_kubernetes, namespace
    assert mesh.is_shared(HOST)
    assert mesh.defined_by(HOST, "ServiceEntry/other/squat").entry.namespace == "other"
