"""What happened to each request: the evidence tests, reports and the access log read.

A :class:`Record` is written once, when the downstream response is final, and never changes.
The :class:`RecordLog` keeps the most recent ones in a bounded ring so memory stays flat on
long runs; ``total`` still counts every request ever recorded.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections import deque
from collections.abc import Iterator


class ResponseFlag(enum.StrEnum):
    """Envoy's response flags (``%RESPONSE_FLAGS%``, envoy/stream_info/stream_info.h), in the
    order Envoy prints them (envoy/source/common/stream_info/utility.cc). A ``str``: records,
    the access log and JSON carry the two- to four-letter code.

    Each flag also carries Envoy's long name and its meaning in words, the one source every
    explanation of a flag is generated from (the HTML report's flag table, ``chaoskit run``'s
    legend): Envoy's ``docs/root/configuration/observability/access_log/usage.rst``, with the
    status chaoskit answers where it sets the flag itself.
    """

    _value_: str
    #: Envoy's name of the flag, e.g. ``UpstreamRetryLimitExceeded`` (Envoy's JSON access log)
    long_name: str
    #: what happened, in words a reader of a report acts on
    meaning: str

    def __new__(cls, code: str, long_name: str = "", meaning: str = "") -> ResponseFlag:
        member = str.__new__(cls, code)
        member._value_ = code
        member.long_name = long_name
        member.meaning = meaning
        return member

    UH = "UH", "NoHealthyUpstream", "no healthy upstream host to send to (503)"
    UF = "UF", "UpstreamConnectionFailure", "connecting to the upstream failed (503)"
    UO = (
        "UO",
        "UpstreamOverflow",
        "a circuit breaker refused it: too many connections, pending requests or retries (503)",
    )
    NR = "NR", "NoRouteFound", "no route matched the request (404)"
    URX = (
        "URX",
        "UpstreamRetryLimitExceeded",
        "the retries were used up; the last attempt's answer was returned",
    )
    NC = "NC", "NoClusterFound", "the route's destination (or subset) does not exist (503)"
    DT = "DT", "DurationTimeout", "the request outlived its maximum stream duration"
    DC = "DC", "DownstreamConnectionTermination", "the client went away before the answer"
    LH = "LH", "FailedLocalHealthCheck", "the local service failed its health check (503)"
    UT = "UT", "UpstreamRequestTimeout", "the route or per-try timeout fired (504)"
    LR = "LR", "LocalReset", "the proxy reset the stream itself (503)"
    UR = "UR", "UpstreamRemoteReset", "the upstream reset the stream (503)"
    UC = "UC", "UpstreamConnectionTermination", "the upstream closed the connection (503)"
    DI = "DI", "DelayInjected", "a fault delay was injected (VirtualService fault)"
    FI = "FI", "FaultInjected", "a fault abort was injected (VirtualService fault)"
    RL = "RL", "RateLimited", "refused by a rate limit (429)"
    UAEX = "UAEX", "UnauthorizedExternalService", "denied by external authorization (403)"
    RLSE = "RLSE", "RateLimitServiceError", "the rate-limit service failed"
    IH = "IH", "InvalidEnvoyRequestHeaders", "an invalid x-envoy-* request header (400)"
    SI = "SI", "StreamIdleTimeout", "the stream was idle too long (408)"
    DPE = "DPE", "DownstreamProtocolError", "the client broke the HTTP protocol (400)"
    UPE = "UPE", "UpstreamProtocolError", "the upstream broke the HTTP protocol (503)"
    UMSDR = (
        "UMSDR",
        "UpstreamMaxStreamDurationReached",
        "the upstream request reached its maximum duration (408)",
    )
    OM = (
        "OM",
        "OverloadManagerTerminated",
        "shed under overload: the proxy's buffered-body budget was full (503)",
    )
    DF = "DF", "DnsResolutionFailed", "resolving the upstream's DNS name failed (503)"
    DO = "DO", "DropOverload", "dropped by the cluster's drop-overload setting (503)"


FLAG_ORDER = tuple(ResponseFlag)
#: :attr:`Record.protocol` of a TCP connection's record.
TCP = "TCP"
_RANK: dict[str, int] = {f: i for i, f in enumerate(FLAG_ORDER)}


def order_flags(flags: set[str] | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Flags de-duplicated and in Envoy's order (``{"URX", "UF"}`` → ``("UF", "URX")``)."""
    return tuple(sorted(set(flags), key=lambda f: _RANK.get(f, len(_RANK))))


def format_flags(flags: tuple[str, ...]) -> str:
    return ",".join(flags) if flags else "-"


def flag_meanings(flags: set[str] | tuple[str, ...] | list[str]) -> list[ResponseFlag]:
    """The known flags among ``flags``, de-duplicated, in Envoy's order: what a legend lists
    (each with its :attr:`~ResponseFlag.long_name` and :attr:`~ResponseFlag.meaning`)."""
    return [ResponseFlag(f) for f in order_flags(flags) if f in _RANK]


def explain_flags(counts: dict[str, int]) -> list[str]:
    """One line per known flag of ``counts`` (flag → requests), in Envoy's order, as the CLI
    prints them, e.g. ``flag UF on 5 requests: connecting to the upstream failed (503)
    [UpstreamConnectionFailure]``."""
    return [
        f"flag {f} on {counts[f]} request{'' if counts[f] == 1 else 's'}: {f.meaning} "
        f"[{f.long_name}]"
        for f in flag_meanings(list(counts))
    ]


class AttemptOutcome(enum.StrEnum):
    """How one upstream attempt ended: the one vocabulary of the retry state
    (:class:`chaoskit.resilience.retry.Outcome`), the attempt records, the access log and the
    pytest assertions. A ``str``, so records and JSON carry the hyphenated word."""

    #: The upstream answered; ``status`` is its status.
    RESPONSE = "response"
    #: The upstream answered, then an UpstreamFault dropped the connection after the headers.
    RESET_AFTER_HEADERS = "reset-after-headers"
    #: The upstream answered with a body larger than chaoskit buffers (500, Envoy's
    #: ``response_payload_too_large``).
    RESPONSE_TOO_LARGE = "response-too-large"
    CONNECT_FAILURE = "connect-failure"
    #: A TCP connection reached the endpoint and was relayed until it ended (a TCP listener's
    #: one attempt: Envoy's TCP proxy never retries a connection once it is established).
    CONNECTED = "connected"
    #: The connection ended or broke the protocol before a whole response arrived.
    RESET = "reset"
    PER_TRY_TIMEOUT = "per-try-timeout"
    #: Refused by the circuit breaker: no endpoint chosen, nothing sent.
    OVERFLOW = "overflow"
    #: No endpoint to send to: nothing sent (answered ``503 UH``; never in an attempt record).
    NO_HEALTHY_UPSTREAM = "no-healthy-upstream"
    #: Refused: the endpoint is this proxy itself.
    LOOP = "loop"
    #: Cut off by the end of the request (:meth:`AttemptInFlight.cut`): the route timeout fired
    #: (the request is answered ``504 UT``) ...
    ROUTE_TIMEOUT = "route-timeout"
    #: ... the client went away (``0 DC``) ...
    CLIENT_GONE = "client-gone"
    #: ... or the request was cancelled for another reason (the proxy stopping, an internal
    #: error).
    CANCELLED = "cancelled"


ROUTE_TIMEOUT = AttemptOutcome.ROUTE_TIMEOUT
CLIENT_GONE = AttemptOutcome.CLIENT_GONE
CANCELLED = AttemptOutcome.CANCELLED


@dataclasses.dataclass(frozen=True, slots=True)
class GaveUp:
    """The downstream client went away while the request was still being worked on: what it
    waited, and what the route would still have allowed. The lesson experiments report (a
    client that gives up before the mesh's timeout and retries are spent makes them
    pointless) is read from this, not from the words of :meth:`describe`."""

    waited: float
    #: the caller's workload name ("" when anonymous)
    source: str
    #: the short name of the service waited for ("" when there was none yet)
    target: str
    #: the route timeout, if any
    timeout: float | None = None
    #: the route's retries (``None``: no retry policy)
    num_retries: int | None = None
    per_try_timeout: float | None = None
    attempts_started: int = 0

    @property
    def retries_left(self) -> bool:
        """Had the route attempts left to make when the client gave up?"""
        if self.num_retries is None:
            return False
        return self.attempts_started < 1 + self.num_retries

    def describe(self) -> str:
        """The note in words, as records and reports show it."""
        who = f"client {self.source}" if self.source else "client"
        target = f" waiting for {self.target}" if self.target else ""
        head = f"{who} gave up after {self.waited:.1f}s{target}"
        if self.num_retries is None:
            if self.timeout:
                return (f"{head}; the route would have waited up to {self.timeout:g}s for an "
                        "answer")  # fmt: skip
            return head
        tries = 1 + self.num_retries
        allows = f"{tries} attempts"
        if self.per_try_timeout:
            allows = f"{tries} × {self.per_try_timeout:g}s attempts"
        if self.timeout:
            allows += f" within a {self.timeout:g}s timeout"
        wasted = (
            "retries here are wasted" if self.retries_left else "its retries were already spent"
        )
        return f"{head}; the route allows {allows} — {wasted}"


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
    outcome: AttemptOutcome
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

    def end(self, outcome: AttemptOutcome, status: int | None, now: float) -> AttemptRecord:
        return AttemptRecord(
            self.number, self.endpoint, outcome, status, now - self.start, self.faults
        )

    def cut(self, outcome: AttemptOutcome, now: float) -> AttemptRecord:
        """The record of this attempt cut off by the end of the request (``outcome``)."""
        return self.end(outcome, self.status, now)


@dataclasses.dataclass(frozen=True, slots=True)
class WebSocketSummary:
    """What went through a WebSocket after its handshake (message payload bytes), and how it
    ended: ``closed_by`` is ``client``, ``upstream`` or ``fault`` (an UpstreamFault closed or
    dropped it); ``close_code`` is the code of the close frame the client got (``1006``: the
    connection ended without one)."""

    messages_from_client: int = 0
    bytes_from_client: int = 0
    messages_to_client: int = 0
    bytes_to_client: int = 0
    closed_by: str = ""
    close_code: int | None = None


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
    #: set when the client went away before the answer (flag ``DC``)
    gave_up: GaveUp | None = None
    #: the downstream protocol as Envoy's %PROTOCOL% prints it: HTTP/1.0, HTTP/1.1, HTTP/2;
    #: ``TCP`` for a connection through a TCP listener (:data:`TCP`), whose record has no
    #: method, path or status (0) and whose duration is the connection's
    protocol: str = "HTTP/1.1"
    #: set on the record of a WebSocket (status 101), written when the socket ends
    websocket: WebSocketSummary | None = None
    #: ``address:port`` of the sockets, when known (``%DOWNSTREAM_LOCAL_ADDRESS%``,
    #: ``%DOWNSTREAM_REMOTE_ADDRESS%``, ``%UPSTREAM_LOCAL_ADDRESS%``)
    downstream_local_address: str = ""
    downstream_remote_address: str = ""
    upstream_local_address: str = ""

    @property
    def is_tcp(self) -> bool:
        """A TCP connection's record (not an HTTP request's)."""
        return self.protocol == TCP

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
