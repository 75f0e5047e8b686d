"""The pure body transform of ``truncateBody``."""

from __future__ import annotations

import pytest

from chaoskit.faults.actions.truncate_body import truncate

BODY = b'{"status": "ok", "amount": 1234}'


@pytest.mark.parametrize(("n", "expected"), [(0, b""), (5, BODY[:5]), (1000, BODY)])
def test_truncate(n: int, expected: bytes) -> None:
    assert truncate(BODY, n) == expected


def test_truncate_rejects_negative() -> None:
    with pytest.raises(ValueError, match="-1"):
        truncate(BODY, -1)
