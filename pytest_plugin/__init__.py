"""chaoskit's pytest plugin: the ``chaos`` fixture, ``@pytest.mark.chaos`` and resilience asserts.

Loaded automatically through the ``pytest11`` entry point; see docs/pytest.md.
"""

import pytest

# Before anything imports it: the assertion helpers get pytest's assertion rewriting.
pytest.register_assert_rewrite("pytest_plugin.assertions")

from pytest_plugin.handle import Chaos, ChaosConfigWarning  # noqa: E402
from pytest_plugin.markers import ChaosMark, evaluate_chaos_marks  # noqa: E402

__all__ = ["Chaos", "ChaosConfigWarning", "ChaosMark", "evaluate_chaos_marks"]
