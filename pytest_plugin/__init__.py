"""chaoskit's pytest plugin: the ``chaos`` fixture, ``@pytest.mark.chaos`` and resilience asserts.

Loaded automatically through the ``pytest11`` entry point; see docs/pytest.md. The source folder
is ``pytest_plugin/`` but the package installs as ``chaoskit_pytest`` (a top-level
``pytest_plugin`` would collide with a user project's own ``pytest_plugin.py``).

The public names below load on first use: pytest imports this package in every run of the venv,
and a run whose tests never use chaos should not import chaoskit's config and HTTP machinery.
"""

from typing import TYPE_CHECKING, Any

import pytest

# Before anything imports it: the assertion helpers get pytest's assertion rewriting.
pytest.register_assert_rewrite(f"{__name__}.assertions")

if TYPE_CHECKING:
    from .handle import Chaos, ChaosConfigWarning
    from .markers import ChaosMark, evaluate_chaos_marks

__all__ = ["Chaos", "ChaosConfigWarning", "ChaosMark", "evaluate_chaos_marks"]

_HOMES = {
    "Chaos": "handle",
    "ChaosConfigWarning": "handle",
    "ChaosMark": "markers",
    "evaluate_chaos_marks": "markers",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
