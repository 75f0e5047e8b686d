"""Sidecar selector analyzers, with WorkloadEntries standing in for pods.

Mirrors istio/istio ``pkg/config/analysis/analyzers/sidecar/selector.go``: a ``workloadSelector``
that selects no workload (ReferencedResourceNotFound, IST0101) and two Sidecars of one namespace
that select the same workload (ConflictingSidecarWorkloadSelectors, IST0110). Istio applies both;
chaoskit, like Istio's proxies in practice, uses the first Sidecar that selects a workload
(:func:`chaoskit.routing.scope.sidecar_for`), so they are warnings. The third finding of that
analyzer, several Sidecars without selector (IST0111), is an error in :mod:`..checks`.
"""

from __future__ import annotations

from chaoskit.config.issues import Issues
from chaoskit.config.mesh import Mesh, labels_match
from chaoskit.config.service_entry import WorkloadEntry
from chaoskit.config.sidecar import Sidecar

REFERENCED_RESOURCE_NOT_FOUND = "IST0101"
CONFLICTING_SIDECAR_SELECTORS = "IST0110"


def _selecting(mesh: Mesh, w: WorkloadEntry) -> list[Sidecar]:
    return [
        s
        for s in mesh.sidecars
        if s.namespace == w.namespace
        and s.workload_selector
        and labels_match(s.workload_selector, w.labels)
    ]


def analyze(mesh: Mesh, issues: Issues) -> None:
    for sc in mesh.sidecars:
        if not sc.workload_selector:
            continue
        selected = [
            w
            for w in mesh.workload_entries
            if w.namespace == sc.namespace and labels_match(sc.workload_selector, w.labels)
        ]
        if not selected:
            shown = ",".join(f"{k}={v}" for k, v in sorted(sc.workload_selector.items()))
            issues.warning(
                sc.location,
                sc.ref,
                "spec.workloadSelector",
                f"selector {shown} selects no WorkloadEntry in namespace {sc.namespace}: this "
                "Sidecar applies to no caller",
                code=REFERENCED_RESOURCE_NOT_FOUND,
            )
        for w in selected:
            rivals = _selecting(mesh, w)
            if len(rivals) < 2:
                continue
            others = ", ".join(r.ref for r in rivals if r is not sc)
            issues.warning(
                sc.location,
                sc.ref,
                "spec.workloadSelector",
                f"WorkloadEntry {w.name} is also selected by {others}; which Sidecar applies is "
                f"undefined in Istio (chaoskit uses the first, {rivals[0].ref})",
                code=CONFLICTING_SIDECAR_SELECTORS,
            )
