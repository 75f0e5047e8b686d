"""Reading what the proxy recorded: filters, host matching, counters and readable listings.

The assertion helpers, the ``chaos.records`` filters and the "chaoskit records" report section
all describe requests the same way, so a failure message and the report read alike::

    POST /pay → 503 in 4 ms (1 attempt: 127.0.0.1:9301 response 503, faults UpstreamFault/…)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import SupportsIndex, overload

from chaoskit.config.hosts import CLUSTER_DOMAIN, expand, is_ip
from chaoskit.config.resource import Resource
from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.config.virtual_service import VirtualService
from chaoskit.records import AttemptRecord, Record

#: How many requests a listing shows before "… and N more".
LISTING_LIMIT = 20


# -- hosts ------------------------------------------------------------------------------------


def host_names(host: str, namespace: str = "default") -> frozenset[str]:
    """Every name a user may mean by ``host``: as written, and expanded like Istio/the proxy.

    ``payments`` → ``payments``, ``payments.default.svc.cluster.local``;
    ``payments.prod`` → also ``payments.prod.svc.cluster.local``.
    """
    name = host.lower().rstrip(".")
    names = {name, expand(name, namespace)}
    if name.count(".") in (1, 2) and not is_ip(name):
        svc, _, rest = name.partition(".")
        names.add(f"{svc}.{rest.split('.')[0]}.{CLUSTER_DOMAIN}")
    return frozenset(names)


def authority_host(authority: str) -> str:
    """``payments:8080`` → ``payments``; ``[::1]:80`` → ``::1``."""
    if authority.startswith("["):
        return authority[1:].partition("]")[0].lower()
    return authority.rpartition(":")[0].lower() if ":" in authority else authority.lower()


def record_matches_host(record: Record, names: frozenset[str]) -> bool:
    """Did ``record`` go to one of ``names`` (its destination service, or the name it asked for)?"""
    return record.host.lower() in names or authority_host(record.authority) in names


# -- record lists -------------------------------------------------------------------------------


def _status_matches(status: int, wanted: int | str | Iterable[int]) -> bool:
    if isinstance(wanted, bool):
        raise TypeError("status must be an int, a class like '5xx', or a collection of ints")
    if isinstance(wanted, int):
        return status == wanted
    if isinstance(wanted, str):
        text = wanted.strip().lower()
        if len(text) == 3 and text.endswith("xx") and text[0].isdigit():
            return status // 100 == int(text[0])
        return str(status) == text
    return status in set(wanted)


def _flags_of(flags: str | Iterable[str]) -> set[str]:
    if isinstance(flags, str):
        return {f.strip() for f in flags.split(",") if f.strip()}
    return set(flags)


class Records(list[Record]):
    """The requests a test made through the proxy, oldest first; a plain ``list`` plus
    :meth:`where`."""

    def where(
        self,
        *,
        host: str | None = None,
        status: int | str | Iterable[int] | None = None,
        flags: str | Iterable[str] | None = None,
        path: str | None = None,
        source: str | None = None,
        method: str | None = None,
    ) -> Records:
        """The records matching every given filter.

        - ``host``: the destination as written by the test (``"payments"``) or fully qualified;
        - ``status``: ``503``, ``"5xx"`` or a collection such as ``{502, 503}``;
        - ``flags``: ``"UT"``, ``"UT,URX"`` or ``["DI", "FI"]`` — the record has *all* of them;
        - ``path``: the request path, with or without its query string;
        - ``source``: the calling workload's name (``""`` for anonymous callers);
        - ``method``: ``"POST"`` (case-insensitive).
        """
        names = host_names(host) if host is not None else None
        wanted_flags = _flags_of(flags) if flags is not None else None
        out = Records()
        for r in self:
            if names is not None and not record_matches_host(r, names):
                continue
            if status is not None and not _status_matches(r.status, status):
                continue
            if wanted_flags is not None and not wanted_flags <= set(r.flags):
                continue
            if path is not None and path not in (r.path, r.path.partition("?")[0]):
                continue
            if source is not None and r.source != source:
                continue
            if method is not None and r.method.upper() != method.upper():
                continue
            out.append(r)
        return out

    @overload
    def __getitem__(self, i: SupportsIndex) -> Record: ...

    @overload
    def __getitem__(self, i: slice) -> Records: ...

    def __getitem__(self, i: SupportsIndex | slice) -> Record | Records:
        if isinstance(i, slice):
            return Records(super().__getitem__(i))
        return super().__getitem__(i)


# -- counters -----------------------------------------------------------------------------------


class Counters(dict[str, float]):
    """Counters by name; a counter that never moved reads as 0 instead of raising KeyError."""

    def __missing__(self, key: str) -> float:
        return 0


def stats_for_host(stats: Mapping[str, float], names: frozenset[str]) -> Counters:
    """Cluster counters of ``host`` with the ``cluster.<name>.`` prefix removed, summed over its
    clusters (one per port and subset): ``{"upstream_rq_total": 3, "upstream_rq_retry": 2}``."""
    longest_first = sorted(names, key=len, reverse=True)
    out = Counters()
    for key, value in stats.items():
        if not key.startswith("cluster."):
            continue
        # cluster.<direction>|<port>|<subset>|<host>.<stat>; the stat may contain dots too
        host_and_stat = key.removeprefix("cluster.").rsplit("|", 1)[-1]
        for name in longest_first:
            if host_and_stat.startswith(name + "."):
                stat = host_and_stat[len(name) + 1 :]
                out[stat] = out.get(stat, 0) + value
                break
    return out


# -- faults declared by a test --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeclaredFault:
    """A fault a test put in place: an ``UpstreamFault`` or one faulted rule of a VirtualService."""

    ref: str  # "UpstreamFault/default/x" or "VirtualService/default/payments http[0]"
    kind: str  # "UpstreamFault" or "VirtualService"
    host: str  # as written in the resource, for messages
    hosts: frozenset[str]  # every name a request to it may carry
    actions: tuple[str, ...]
    resource: Resource

    def fired_in(self, record: Record) -> bool:
        """Did this fault act on ``record`` (one of its attempts, or its route)?"""
        if not record_matches_host(record, self.hosts):
            return False
        if self.kind == "UpstreamFault":
            return any(fault_entry_is(e, self.ref) for a in record.attempts for e in a.faults)
        return bool(set(record.faults) & set(self.actions))

    def describe(self) -> str:
        return f"{self.ref} ({', '.join(self.actions) or 'no action'})"


def fault_entry_is(entry: str, ref: str) -> bool:
    """Does an attempt's fault entry (``"UpstreamFault/default/x:abort"``) name ``ref``?"""
    head = entry.split(":", 1)[0].strip()
    if head == ref:
        return True
    _, ns, name = ([*ref.split("/"), "", ""])[:3]
    return head in (f"{ns}/{name}", name)


def declared_faults(resources: Iterable[Resource]) -> list[DeclaredFault]:
    """The faults among ``resources`` (pass only the ones the test added, not the base)."""
    out: list[DeclaredFault] = []
    for r in resources:
        if isinstance(r, UpstreamFault):
            names = host_names(r.host, r.namespace) | host_names(r.fqdn or r.host)
            out.append(DeclaredFault(r.ref, r.KIND, r.host, names, r.actions, r))
        elif isinstance(r, VirtualService):
            names = frozenset().union(*(host_names(h, r.namespace) for h in r.hosts))
            for route in r.http:
                fault = route.fault
                if fault is None:
                    continue
                actions = tuple(
                    name
                    for name, part in (("delay", fault.delay), ("abort", fault.abort))
                    if part is not None
                )
                ref = f"{r.ref} http[{route.index}]"
                out.append(DeclaredFault(ref, r.KIND, r.hosts[0], names, actions, r))
    return out


# -- readable listings ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def describe_attempt(a: AttemptRecord) -> str:
    text = f"{a.endpoint or '-'} {a.outcome}"
    if a.status is not None:
        text += f" {a.status}"
    if a.faults:
        text += f", faults {','.join(a.faults)}"
    return text


def describe_record(r: Record) -> str:
    """One line per request, e.g. ``POST /pay → 503 in 4 ms (1 attempt: …)``."""
    text = f"{r.method} {r.path} → {r.status}"
    if r.flags:
        text += f" [{','.join(r.flags)}]"
    text += f" in {_ms(r.duration)}"
    details: list[str] = []
    if r.attempts:
        n = len(r.attempts)
        details.append(
            f"{n} attempt{'s' if n != 1 else ''}: "
            + "; ".join(describe_attempt(a) for a in r.attempts)
        )
    else:
        details.append("no upstream attempt")
    if r.faults:
        details.append(f"route fault {'+'.join(r.faults)}")
    if r.source:
        details.append(f"from {r.source}")
    if r.notes:
        details.append("; ".join(r.notes))
    return f"{text} ({'; '.join(details)})"


def listing(records: Sequence[Record], indent: str = "    ") -> list[str]:
    """Lines describing ``records``, cut at :data:`LISTING_LIMIT`."""
    lines = [indent + describe_record(r) for r in records[:LISTING_LIMIT]]
    if len(records) > LISTING_LIMIT:
        lines.append(f"{indent}… and {len(records) - LISTING_LIMIT} more")
    return lines


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def by_host(records: Sequence[Record]) -> dict[str, list[Record]]:
    """Records grouped by destination (the service, or the authority for unknown hosts)."""
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(r.host or authority_host(r.authority), []).append(r)
    return out


def grouped_listing(records: Sequence[Record], indent: str = "  ") -> list[str]:
    """``N requests to HOST:`` then each request, per destination host."""
    lines: list[str] = []
    for host, rs in by_host(records).items():
        lines.append(f"{indent}{plural(len(rs), 'request')} to {host}:")
        lines.extend(listing(rs, indent + "  "))
    return lines
