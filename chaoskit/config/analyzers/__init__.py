"""Mesh-wide analyzers in the manner of ``istioctl analyze``, one module per Istio analyzer family.

The core cross-resource checks live in :mod:`chaoskit.config.checks`; the modules here add the
findings of Istio's analyzers (istio/istio ``pkg/config/analysis/analyzers/``) that apply to a
mesh without Kubernetes pods, each with Istio's message code.
"""

from __future__ import annotations

from chaoskit.config.analyzers import (
    deprecation,
    gateways,
    matches,
    mtls,
    serviceentries,
    sidecars,
)
from chaoskit.config.issues import Issues
from chaoskit.config.mesh import Mesh


def analyze(mesh: Mesh, issues: Issues) -> None:
    """Run every analyzer over ``mesh``; findings are appended to ``issues``."""
    matches.analyze(mesh, issues)
    gateways.analyze(mesh, issues)
    serviceentries.analyze(mesh, issues)
    sidecars.analyze(mesh, issues)
    mtls.analyze(mesh, issues)
    deprecation.analyze(mesh, issues)
