"""The lessons of a run, from the proxy's records: clients that gave up before the mesh did.

A client whose own timeout is shorter than the route's timeout and retries makes those retries
pointless (docs/resilience.md, "a client that gives up first"). The proxy records each such
request as a typed :class:`~chaoskit.records.GaveUp`; this groups them into one line per
situation — the same caller, service and route policy — with how many requests it happened to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable

from chaoskit.records import GaveUp, Record


def _situation(g: GaveUp) -> Hashable:
    """What a lesson is about: the values :meth:`GaveUp.describe` shows, except how long the
    client waited — so requests whose lessons read the same are one line (a per-try timeout
    without a retry policy is not shown, nor a zero timeout; of ``attempts_started`` only
    whether retries were left)."""
    if g.num_retries is None:
        return (g.source, g.target, None, g.timeout or None)
    policy = (g.num_retries, g.per_try_timeout or None, g.timeout or None, g.retries_left)
    return (g.source, g.target, *policy)


def lessons(records: Iterable[Record]) -> list[str]:
    """One line per situation, most frequent first (then in order of first occurrence): the
    first such request's :meth:`GaveUp.describe`, with the count when there were several."""
    first: dict[Hashable, GaveUp] = {}
    counts: Counter[Hashable] = Counter()
    for record in records:
        if record.gave_up is None:
            continue
        key = _situation(record.gave_up)
        first.setdefault(key, record.gave_up)
        counts[key] += 1
    return [
        f"{first[k].describe()} ({n} requests)" if n > 1 else first[k].describe()
        for k, n in counts.most_common()
    ]
