"""How chaoskit installs: the package list in pyproject.toml and the plugin's import name."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject():
    """setuptools' find cannot rename pytest_plugin/ to chaoskit_pytest, so the packages are
    listed by hand; a new subpackage left out of the list would be missing from the wheel."""
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    folders = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "chaoskit").rglob("__init__.py")
    }
    assert sorted(listed) == sorted(folders | {"chaoskit_pytest"})


def test_a_project_with_its_own_pytest_plugin_module_starts_pytest(tmp_path: Path):
    """A user's pytest_plugin.py (a common name) must not shadow chaoskit's plugin: pytest used
    to stop at startup with 'Error while loading plugin "pytest11"'."""
    (tmp_path / "pytest_plugin.py").write_text("VALUE = 'the project own module'\n")
    (tmp_path / "test_own.py").write_text(
        "import pytest_plugin\n\n"
        "def test_own_module(pytestconfig):\n"
        "    assert pytest_plugin.VALUE == 'the project own module'\n"
        "    assert pytestconfig.pluginmanager.has_plugin('chaoskit')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
