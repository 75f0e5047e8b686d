"""The package's public surface."""

from __future__ import annotations

from chaoskit import routing


def test_all_is_sorted_and_importable() -> None:
    assert routing.__all__ == sorted(routing.__all__)
    for name in routing.__all__:
        assert getattr(routing, name) is not None


def test_no_mitmproxy_import() -> None:
    from pathlib import Path

    for source in Path(routing.__file__).parent.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "import mitmproxy" not in text and "from mitmproxy" not in text, source.name
