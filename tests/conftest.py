"""Shared test settings: Hypothesis profiles chosen by HYPOTHESIS_PROFILE (fast in CI, deep by
hand), and fixtures more than one test package uses."""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fast", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "deep", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file someone would like chaoskit to write into or over (a shell rc file): the
    output-file tests plant a link to it where chaoskit writes."""
    path = tmp_path / "bashrc"
    path.write_text("export PATH=/usr/bin\n")
    path.chmod(0o644)
    return path
