"""Istio mutual TLS is accepted but not emulated: say so with a note rather than stay silent.

Between sidecars Istio encrypts with mesh identities (``ISTIO_MUTUAL``) and PeerAuthentication
decides what a workload accepts. chaoskit has no identities and speaks plain HTTP to endpoints, so
a DestinationRule with ``tls.mode: ISTIO_MUTUAL`` behaves as ``DISABLE`` (see
docs/istio-compatibility.md). Istio has no analyzer code for this: it is a chaoskit note.
"""

from __future__ import annotations

from collections.abc import Iterator

from chaoskit.config.destination_rule import DestinationRule, TrafficPolicy
from chaoskit.config.issues import Issues
from chaoskit.config.mesh import Mesh

_NOT_EMULATED = (
    "ISTIO_MUTUAL is not emulated: chaoskit has no mesh identities and sends plain HTTP to "
    "the endpoints (as with DISABLE)"
)


def _policies(dr: DestinationRule) -> Iterator[tuple[str, TrafficPolicy]]:
    if dr.traffic_policy is not None:
        yield "spec.trafficPolicy", dr.traffic_policy
    for i, subset in enumerate(dr.subsets):
        if subset.traffic_policy is not None:
            yield f"spec.subsets[{i}].trafficPolicy", subset.traffic_policy


def analyze(mesh: Mesh, issues: Issues) -> None:
    """A note for each ``tls`` block (top, port level, subset) in ``ISTIO_MUTUAL`` mode."""
    for dr in mesh.destination_rules:
        for path, policy in _policies(dr):
            if policy.tls is not None and policy.tls.mode == "ISTIO_MUTUAL":
                issues.note(dr.location, dr.ref, f"{path}.tls.mode", _NOT_EMULATED)
            for j, port in enumerate(policy.port_level_settings):
                if port.tls is not None and port.tls.mode == "ISTIO_MUTUAL":
                    where = f"{path}.portLevelSettings[{j}].tls.mode"
                    issues.note(dr.location, dr.ref, where, _NOT_EMULATED)
