"""What happened to each request: the evidence tests, reports and the access log read.

A :class:`Record` is written once, when the downstream response is final, and never changes.
The :class:`RecordLog` keeps the most recent ones in a bounded ring so memory stays flat on
long runs; ``total`` still counts every request ever recorded.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Iterator

#: Envoy's response flags in the order Envoy prints them (stream_info/utility.h).
FLAG_ORDER = (
    "UH", "UF", "UO", "NR", "URX", "NC", "DT", "DC", "LH", "UT", "LR", "UR", "UC", "DI", "FI",
    "RL", "UAEX", "RLSE", "IH", "SI", "DPE", "UPE", "UMSDR", "OM", "DF", "DO",
)  # fmt: skip
_RANK = {f: i for i, f in enumerate(FLAG_ORDER)}


def order_flags(flags: set[str] | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Flags de-duplicated and in Envoy's order (``{"URX", "UF"}`` → ``("UF", "URX")``)."""
    return tuple(sorted(set(flags), key=lambda f: _RANK.get(f, len(_RANK))))


def format_flags(flags: tuple[str, ...]) -> str:
    return ",".join(flags) if flags else "-"


#: How an attempt ends when the request ends under it (:meth:`AttemptInFlight.cut`): the route
#: timeout fired (the request is answered ``504 UT``), the client went away (``0 DC``), or the
#: request was cancelled for another reason (the proxy stopping, an internal error).
ROUTE_TIMEOUT = "route-timeout"
CLIENT_GONE = "client-gone"
CANCELLED = "cancelled"


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One upstream attempt: where it went, how it ended, what was injected into it.

    ``outcome`` is ``response`` (``status`` is the upstream's), ``reset-after-headers``,
    ``response-too-large``, ``connect-failure``, ``reset``, ``per-try-timeout``, ``overflow``
    (refused by the circuit breaker: no endpoint, nothing sent), ``loop`` (refused: the endpoint
    is this proxy), or one of the cut-off outcomes :data:`ROUTE_TIMEOUT`, :data:`CLIENT_GONE`,
    :data:`CANCELLED` — the attempt was still running (in an UpstreamFault delay or hang, on
    the wire, or receiving a slow body) when the request ended; ``status`` is then the
    upstream's if its response had already arrived, else ``None``.
    """

    number: int
    endpoint: str
    outcome: str
    status: int | None = None
    duration: float = 0.0
    faults: tuple[str, ...] = ()


@dataclasses.dataclass(slots=True)
class AttemptInFlight:
    """An attempt that has started and not yet ended: what its record will say if the request
    ends under it, so a cut-off attempt is never missing from the record."""

    number: int
    endpoint: str
    start: float  # monotonic
    faults: tuple[str, ...] = ()
    status: int | None = None  # set once the upstream's response has arrived

    def end(self, outcome: str, status: int | None, now: float) -> AttemptRecord:
        return AttemptRecord(
            self.number, self.endpoint, outcome, status, now - self.start, self.faults
        )

    def cut(self, outcome: str, now: float) -> AttemptRecord:
        """The record of this attempt cut off by the end of the request (``outcome``)."""
        return self.end(outcome, self.status, now)


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One downstream request and its final answer."""

    seq: int
    request_id: str
    start: float  # wall-clock seconds since the epoch
    duration: float  # seconds, downstream request received → response ready
    listener: str  # "mesh" or "gateway:<port>"
    source: str  # the caller's workload name ("" when anonymous)
    method: str
    scheme: str
    authority: str
    path: str
    status: int
    flags: tuple[str, ...] = ()
    details: str = ""
    route_name: str = ""
    host: str = ""  # destination service (fully qualified) or the passthrough host
    cluster: str = ""  # outbound|port|subset|host
    upstream_host: str = ""  # endpoint of the last attempt, address:port
    attempts: tuple[AttemptRecord, ...] = ()
    faults: tuple[str, ...] = ()  # route-level (VirtualService) faults: "delay", "abort"
    notes: tuple[str, ...] = ()  # policy decisions in words, for failure messages and reports
    bytes_received: int = 0
    bytes_sent: int = 0
    user_agent: str = ""

    @property
    def retries(self) -> int:
        return max(0, len(self.attempts) - 1)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class RecordLog:
    """A thread-safe ring of the latest records (written by the proxy loop, read by tests)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: deque[Record] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.total = 0

    @property
    def capacity(self) -> int:
        return self._items.maxlen or 0

    def next_seq(self) -> int:
        with self._lock:
            self.total += 1
            return self.total

    def append(self, record: Record) -> None:
        with self._lock:
            self._items.append(record)

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __iter__(self) -> Iterator[Record]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
