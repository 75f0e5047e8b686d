"""Seeded random streams: every random decision chaoskit makes comes from here.

One run seed fans out into independent named streams (``"route"``, ``"lb/<cluster>"``,
``"fault/VirtualService/default/ratings/0"``, ...). A stream depends only on the seed and its
name, so adding a new kind of decision never shifts the numbers of an existing one, and the
same seed with the same request sequence gives the same decisions.

Percentages (a fault's ``percentage``, a mirror's ``mirrorPercentage``) are drawn the way Envoy
evaluates a ``FractionalPercent`` (``ProtobufPercentHelper::evaluateFractionalPercent`` in
envoy/source/common/protobuf/utility.cc, called by ``Runtime::SnapshotImpl::featureEnabled``):
an integer draw per million compared with the numerator, so ``0`` is exactly never and ``100``
exactly always.
"""

from __future__ import annotations

import hashlib
import random
import secrets

#: Denominator of a percentage draw (Envoy's ``FractionalPercent.MILLION``).
PER_MILLION = 1_000_000


def derive(seed: int, name: str) -> int:
    """A 64-bit seed for the stream ``name`` of run ``seed`` (stable across processes)."""
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def new_seed() -> int:
    """A fresh seed for a run that was not given one (printed, so it can be replayed)."""
    return secrets.randbelow(2**31)


def parse_seed(text: str) -> int:
    """``"42"`` → 42; raises :class:`ValueError` with a readable message otherwise."""
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a seed (a whole number such as 42)") from None
    if value < 0:
        raise ValueError(f"seed {value} is negative")
    return value


def draw_percentage(rng: random.Random, percentage: float) -> bool:
    """One draw of ``percentage`` (0-100) from ``rng``: ``True`` when it fires.

    ``round(percentage · 10 000)`` per million, so ``0`` (and anything under 0.00005) never fires
    and ``100`` always does. Exactly one integer is drawn whatever ``percentage`` is, as Envoy
    draws a random value for every evaluation: a stream shared by several decisions advances the
    same way whether one of them is 0, 50 or 100, so changing one percentage never shifts the
    draws of the others.
    """
    threshold = round(percentage * (PER_MILLION // 100))
    return rng.randrange(PER_MILLION) < threshold


class Seeds:
    """The named streams of one run."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        rng = self._streams.get(name)
        if rng is None:
            rng = self._streams[name] = random.Random(derive(self.seed, name))
        return rng

    def reset(self) -> None:
        """Restart every stream from the seed (between tests, so each test replays alike)."""
        self._streams.clear()
