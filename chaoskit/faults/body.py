"""Pure response-body transforms: ``truncateBody`` and ``corruptBody``."""

from __future__ import annotations

import random


def truncate(body: bytes, n: int) -> bytes:
    """The first ``n`` bytes of ``body`` (all of it when shorter); the response then ends."""
    if n < 0:
        raise ValueError(f"cannot truncate to {n} bytes")
    return body[:n]


def corrupt(body: bytes, n: int, rng: random.Random) -> bytes:
    """``body`` with ``n`` bytes at distinct ``rng``-chosen positions flipped (XOR ``0xff``).

    Every chosen byte changes; a body shorter than ``n`` has all its bytes flipped and an empty
    body stays empty. Positions come only from ``rng``, so a seeded stream replays exactly.
    """
    if n < 0:
        raise ValueError(f"cannot corrupt {n} bytes")
    count = min(n, len(body))
    if count == 0:
        return body
    out = bytearray(body)
    for position in rng.sample(range(len(out)), count):
        out[position] ^= 0xFF
    return bytes(out)
