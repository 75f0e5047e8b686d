"""Helpers for the tests of files chaoskit writes (tests/chaoskit/test_safefiles.py,
tests/reliability/test_safe_defaults.py): modes and another user. The file worth protecting
is the ``victim`` fixture in tests/conftest.py."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

OTHER_UID = 54321  # a user that is not us (chown needs root)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)
