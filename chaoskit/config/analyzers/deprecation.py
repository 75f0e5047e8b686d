"""Deprecated fields that ``istioctl analyze`` flags (Deprecated, IST0002).

Mirrors istio/istio ``pkg/config/analysis/analyzers/deprecation/deprecation.go`` for the one field
chaoskit keeps in its model: a Sidecar's ``outboundTrafficPolicy.egressProxy``, which that analyzer
reports as ignored. Pilot still honours it, and so does chaoskit (unknown hosts go through it), so
this is a warning that it may stop working, not a change in behaviour. The analyzer's other field,
``fault.delay.percent``, is warned about while parsing the VirtualService.
"""

from __future__ import annotations

from chaoskit.config.issues import Issues
from chaoskit.config.mesh import Mesh

DEPRECATED = "IST0002"


def analyze(mesh: Mesh, issues: Issues) -> None:
    for sc in mesh.sidecars:
        policy = sc.outbound_traffic_policy
        if policy is not None and policy.egress_proxy is not None:
            issues.warning(
                sc.location,
                sc.ref,
                "spec.outboundTrafficPolicy.egressProxy",
                "deprecated: istioctl analyze reports egressProxy as ignored; chaoskit still "
                "sends hosts outside the registry through it",
                code=DEPRECATED,
            )
