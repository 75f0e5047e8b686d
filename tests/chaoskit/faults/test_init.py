"""The package's public surface, and its purity."""

from __future__ import annotations

from pathlib import Path

from chaoskit import faults


def test_all_is_sorted_and_importable() -> None:
    assert faults.__all__ == sorted(faults.__all__)
    for name in faults.__all__:
        assert getattr(faults, name) is not None


def test_pure_no_io_no_clock_no_global_random() -> None:
    banned = ("import asyncio", "import socket", "import time", "mitmproxy", "random.random(")
    for source in Path(faults.__file__).parent.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not [b for b in banned if b in text], source.name
