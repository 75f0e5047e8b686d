"""Istio and chaoskit YAML → an immutable, validated :class:`~chaoskit.config.mesh.Mesh`.

The edge of the system: everything below works on frozen objects, nothing below sees YAML.

>>> from chaoskit.config import load
>>> mesh = load("experiments/bookinfo/mesh")            # raises ConfigError listing every error
>>> sorted(mesh.subsets_for("reviews.default.svc.cluster.local"))
['v1', 'v2', 'v3']
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from chaoskit.config.checks import check_mesh
from chaoskit.config.gcpause import gc_paused
from chaoskit.config.issues import Issue, Issues, Severity
from chaoskit.config.loader import LoadResult, load_paths, load_text
from chaoskit.config.mesh import Mesh, build_mesh
from chaoskit.config.resource import Resource
from chaoskit.errors import ConfigError

__all__ = [
    "Issue",
    "Issues",
    "LoadResult",
    "Mesh",
    "Severity",
    "Validation",
    "build_mesh",
    "load",
    "load_paths",
    "load_text",
    "validate",
    "validate_paths",
]


@dataclasses.dataclass(frozen=True)
class Validation:
    """The outcome of validating some sources: the mesh plus every issue, in file order."""

    mesh: Mesh
    issues: Issues
    files: tuple[str, ...]
    unreadable: tuple[str, ...]

    @property
    def resources(self) -> tuple[Resource, ...]:
        return self.mesh.resources

    @property
    def ok(self) -> bool:
        return not self.unreadable and not self.issues.errors


def validate(results: Iterable[LoadResult]) -> Validation:
    """Combine loaded sources (in order, later ones layered over earlier) and check the mesh.

    The cyclic GC is paused meanwhile (:mod:`chaoskit.config.gcpause` says why).
    """
    issues = Issues()
    resources: list[Resource] = []
    files: list[str] = []
    unreadable: list[str] = []
    with gc_paused():
        for r in results:
            issues.extend(r.issues)
            resources.extend(r.resources)
            files.extend(r.files)
            unreadable.extend(r.unreadable)
        mesh = build_mesh(resources, issues)
        check_mesh(mesh, issues)
    return Validation(mesh, issues, tuple(files), tuple(unreadable))


def validate_paths(paths: Iterable[str | os.PathLike[str]]) -> Validation:
    """Load files and folders and validate them together.

    One GC pause covers both steps, so no collection runs in between (see :mod:`.gcpause`).
    """
    with gc_paused():
        return validate([load_paths(paths)])


def load(*paths: str | os.PathLike[str]) -> Mesh:
    """Load and validate; raise :class:`~chaoskit.errors.ConfigError` with every error found."""
    v = validate_paths(paths)
    if not v.ok:
        raise ConfigError(v.issues.sorted())
    return v.mesh
