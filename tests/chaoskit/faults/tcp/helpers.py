"""Builders shared by the TCP fault tests."""

from __future__ import annotations

from chaoskit.config.loader import load_text
from tests.chaoskit.faults.helpers import doc


def errors(spec: str) -> list[tuple[str, str]]:
    """(path, message) of every error loading an UpstreamFault with ``spec``."""
    result = load_text(doc(spec), "f.yaml")
    return [(i.path, i.message) for i in result.issues.errors]
