"""Consistent hashing (``consistentHash``): ring hash and Maglev, plus the request's hash key.

Both algorithms map a 64-bit key to a host so that the same key keeps reaching the same host
(soft session affinity) and a change to the host set moves few keys: about 1/N of them, those of
the removed host or those an added host takes over. That loss of affinity when hosts change (an
ejection included) is expected of consistent hashing, not a bug. Ring hash moves somewhat more
than 1/N on small clusters, as in Envoy, because the ring is rescaled to keep its minimum size
(4 → 3 hosts: 256 → 342 points each, so the survivors' new points also trade keys, ~35% in all).

Tables are built from the hosts' ``key`` and weight, sorted, so the same host set gives the same
table whatever its order or object identity, and are cached until that set changes. Hashes use
blake2b (64 bits), never Python's per-process salted ``hash()``, so mappings replay across runs.
A request without a key goes to a random host, weighted like the table, as Envoy does.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
from collections.abc import Sequence

from chaoskit.config.destination_rule import ConsistentHashLB
from chaoskit.loadbalancing._weights import weight_of
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.routing.request import RequestInfo

#: Envoy's ``maximum_ring_size`` default (8M entries); the ring never grows past it.
MAXIMUM_RING_SIZE = 8 * 1024 * 1024
_MASK64 = (1 << 64) - 1
#: The sorted ``(key, weight)`` pairs a table was built from.
_Signature = tuple[tuple[str, int], ...]


def stable_hash(text: str, seed: int = 0) -> int:
    """A 64-bit hash of ``text`` that is the same in every process and on every platform."""
    data = text.encode("utf-8", "surrogateescape")
    digest = hashlib.blake2b(data, digest_size=8, salt=seed.to_bytes(16, "big")).digest()
    return int.from_bytes(digest, "big")


class _HashTable:
    """What both algorithms share: cache by host set, random key when none, key → host."""

    def __init__(self) -> None:
        self._signature: _Signature = ()

    def choose(
        self, hosts: Sequence[UpstreamHost], rng: random.Random, hash_key: int | None = None
    ) -> UpstreamHost | None:
        if not hosts:
            return None
        signature = tuple(sorted((h.key, weight_of(h)) for h in hosts))
        if signature != self._signature:
            self._build(signature)
            self._signature = signature
        key = rng.getrandbits(64) if hash_key is None else hash_key & _MASK64
        wanted = signature[self._slot(key)][0]
        return next(h for h in hosts if h.key == wanted)

    def _build(self, signature: _Signature) -> None:
        raise NotImplementedError

    def _slot(self, key: int) -> int:
        """Index into the signature of the host that owns ``key``."""
        raise NotImplementedError


class RingHash(_HashTable):
    """Envoy's ketama-style ring: each host owns points proportional to its weight.

    The ring has at least ``minimum_ring_size`` points, scaled up so that the lightest host gets
    a whole number of them (Envoy's rule); point ``i`` of a host is the hash of ``"<key>_<i>"``.
    A key belongs to the first point at or after it, wrapping around.
    """

    def __init__(self, minimum_ring_size: int = ConsistentHashLB.DEFAULT_MINIMUM_RING_SIZE) -> None:
        if minimum_ring_size < 1:
            raise ValueError(f"minimum ring size {minimum_ring_size} is not a positive number")
        super().__init__()
        self.minimum_ring_size = min(minimum_ring_size, MAXIMUM_RING_SIZE)
        self._points: list[int] = []
        self._owners: list[int] = []

    def _build(self, signature: _Signature) -> None:
        total = sum(w for _, w in signature)
        lightest = min(w for _, w in signature) / total
        scale = min(math.ceil(lightest * self.minimum_ring_size) / lightest, MAXIMUM_RING_SIZE)
        points: list[tuple[int, int]] = []
        made, target = 0, 0.0
        for owner, (key, weight) in enumerate(signature):
            target += scale * weight / total
            i = 0
            while made < target:
                points.append((stable_hash(f"{key}_{i}"), owner))
                i += 1
                made += 1
        points.sort()
        self._points = [p for p, _ in points]
        self._owners = [o for _, o in points]

    def _slot(self, key: int) -> int:
        i = bisect.bisect_left(self._points, key)
        return self._owners[i if i < len(self._points) else 0]


def _is_prime(n: int) -> bool:
    """Envoy's test, under which 1 counts as prime too (a one-entry table still works)."""
    if 0 < n < 4:
        return True
    return n % 2 == 1 and all(n % d for d in range(3, math.isqrt(n) + 1, 2))


class Maglev(_HashTable):
    """Google's Maglev lookup table (as Envoy builds it): ``key % table_size`` picks the entry.

    Hosts take turns claiming the next free slot of their own permutation of the table (offset
    and skip from two hashes of the key); a host with weight w claims on w of every ``max
    weight`` turns. The size must be prime, or a permutation would not visit every slot.
    """

    def __init__(self, table_size: int = ConsistentHashLB.DEFAULT_TABLE_SIZE) -> None:
        if not _is_prime(table_size):
            raise ValueError(f"Maglev table size {table_size} is not a prime number")
        super().__init__()
        self.table_size = table_size
        self._table: list[int] = []

    def _build(self, signature: _Signature) -> None:
        m = self.table_size
        heaviest = max(w for _, w in signature)
        position = [stable_hash(key, 0) % m for key, _ in signature]
        skip = [stable_hash(key, 1) % (m - 1) + 1 if m > 1 else 1 for key, _ in signature]
        claimed = [0] * len(signature)
        table = [-1] * m
        filled, turn = 0, 1
        while filled < m:
            for owner, (_, weight) in enumerate(signature):
                if weight * turn < claimed[owner]:
                    continue
                claimed[owner] += heaviest
                c, step = position[owner], skip[owner]
                while table[c] >= 0:
                    c = c + step - m if c + step >= m else c + step
                table[c] = owner
                position[owner] = c + step - m if c + step >= m else c + step
                filled += 1
                if filled == m:
                    break
            turn += 1
        self._table = table

    def _slot(self, key: int) -> int:
        return self._table[key % self.table_size]


# -- hash keys ---------------------------------------------------------------------------------


def _cookie(header: str, name: str) -> str | None:
    """The first cookie ``name`` in a ``cookie`` header, unquoted; ``None`` when absent or empty.

    Pairs are split on ``;`` and also on ``,``, which joins repeated ``cookie`` headers in
    :class:`RequestInfo` and cannot occur in a cookie value (RFC 6265 ``cookie-octet``).
    """
    for pair in re.split(r"[;,]", header):
        k, sep, value = pair.partition("=")
        if sep and k.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None  # Envoy treats an empty cookie as a missing one
    return None


def hash_key_for(settings: ConsistentHashLB, request: RequestInfo) -> int | None:
    """The request's hash key from the one source ``settings`` names; ``None`` when it is missing.

    A header or query parameter that is present but empty still hashes (Envoy hashes what is
    there); an empty cookie does not. ``None`` sends the request to a random host.
    """
    value: str | None = None
    if settings.http_header_name:
        value = request.headers.get(settings.http_header_name.lower())
    elif settings.http_cookie is not None:
        value = _cookie(request.headers.get("cookie", ""), settings.http_cookie.name)
    elif settings.use_source_ip:
        value = request.client_address or None
    elif settings.http_query_parameter_name:
        value = request.query_params().get(settings.http_query_parameter_name)
    return None if value is None else stable_hash(value)


def needs_new_cookie(settings: ConsistentHashLB, request: RequestInfo) -> bool:
    """Whether Envoy would set the affinity cookie: cookie hashing with ``ttl``, cookie absent."""
    cookie = settings.http_cookie
    return (
        cookie is not None
        and cookie.ttl is not None
        and _cookie(request.headers.get("cookie", ""), cookie.name) is None
    )


def new_cookie(settings: ConsistentHashLB, rng: random.Random) -> tuple[int, str]:
    """A fresh affinity cookie: ``(hash_key, Set-Cookie value)``.

    The value is a random token from ``rng``; its hash key is what :func:`hash_key_for` gives a
    later request carrying the cookie, so that request reaches the same host. The header follows
    Envoy's layout: ``name="token"; Max-Age=<whole seconds>; Path=…; <attributes>; HttpOnly``,
    with no ``Max-Age`` when the ttl rounds down to 0 (a session cookie).
    """
    cookie = settings.http_cookie
    if cookie is None or cookie.ttl is None:
        raise ValueError("a cookie is generated only for httpCookie hashing with a ttl")
    token = f"{rng.getrandbits(64):016x}"
    parts = [f'{cookie.name}="{token}"']
    if max_age := int(cookie.ttl):
        parts.append(f"Max-Age={max_age}")
    if cookie.path:
        parts.append(f"Path={cookie.path}")
    parts.extend(f"{k}={v}" if v else k for k, v in cookie.attributes)
    parts.append("HttpOnly")
    return stable_hash(token), "; ".join(parts)
