"""The pure body transform of ``corruptBody``."""

from __future__ import annotations

import pytest

from chaoskit.faults.actions.corrupt_body import corrupt
from tests.chaoskit.faults.helpers import rng

BODY = b'{"status": "ok", "amount": 1234}'


def flipped(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


@pytest.mark.parametrize("n", [1, 3, len(BODY)])
def test_corrupt_flips_exactly_n_distinct_bytes(n: int) -> None:
    out = corrupt(BODY, n, rng(1))
    positions = flipped(BODY, out)
    assert len(positions) == n
    assert all(out[i] == BODY[i] ^ 0xFF for i in positions)


def test_corrupt_more_than_the_body_flips_every_byte() -> None:
    assert corrupt(b"ab", 10, rng()) == bytes([ord("a") ^ 0xFF, ord("b") ^ 0xFF])


def test_corrupt_empty_body_and_zero_bytes() -> None:
    assert corrupt(b"", 3, rng()) == b""
    assert corrupt(BODY, 0, rng()) == BODY


def test_corrupt_is_deterministic_per_seed() -> None:
    assert corrupt(BODY, 2, rng(5)) == corrupt(BODY, 2, rng(5))
    outs = {corrupt(BODY, 1, rng(seed)) for seed in range(20)}
    assert len(outs) > 1  # positions come from the stream


def test_corrupt_rejects_negative() -> None:
    with pytest.raises(ValueError, match="-2"):
        corrupt(BODY, -2, rng())
