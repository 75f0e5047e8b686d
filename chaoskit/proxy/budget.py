"""A global budget for the request and response bodies the proxy holds in memory at once.

Why: chaoskit buffers every body it forwards (a fault, a retry or a relayed reply needs all of
it), and each is capped only on its own (64 MiB). Twenty concurrent 60 MB uploads took the proxy
to 2 GB. :class:`BodyBudget` bounds the sum, as Envoy's overload manager bounds its heap: a
request whose body would not fit is answered ``503 envoy overloaded`` (flag ``OM``, details
``overload``, counted in ``http.downstream_rq_overload_close``) — or ``413 Payload Too Large``
(details ``request_payload_too_large``, ``http.downstream_rq_too_large``) when it could never
fit — and an upstream body that does not fit is refused like one over the per-response cap
(:class:`chaoskit.proxy.upstream.ResponseTooLarge`).

How, per flow (:class:`~chaoskit.proxy.budget_guard.BodyBudgetGuard`, placed before the core):

- ``requestheaders``: a body announced by ``content-length`` is reserved before mitmproxy reads
  a byte of it. If it does not fit, the reply goes out at once and the body is read and
  dropped, never buffered (mitmproxy would buffer the whole body before answering: see
  :func:`chaoskit.proxy.budget_streams.wrappers`); the connection is closed after it.
- A body without a length (chunked, HTTP/2) is reserved chunk by chunk as it arrives, and
  refused the same way the moment it no longer fits.
- Upstream response bodies are reserved as they are read, for the flow whose hook reads them
  (:func:`current_holding`), retries included; one of at most :data:`ALWAYS_FITS` bytes always
  fits (its request was admitted and has reached the upstream).
- Everything the flow reserved is released together when it ends — reply handed to the
  client's connection, client gone, error — and the flow lets go of both bodies then, so their
  memory returns at once: a finished flow stays reachable from reference cycles inside
  mitmproxy's protocol layers until the cyclic garbage collector runs, which in ``chaoskit
  proxy`` (frozen start-up heap, high thresholds) can take minutes. The freed heap is then
  handed back to the OS (:class:`HeapTrimmer`).

The budget counts body bytes. While mitmproxy assembles a request body it holds it twice (the
chunks it arrived in, then the whole), so the process peaks near three times the bodies it
admitted (measured: docs/performance.md §2.1).

This module is the accounting (no mitmproxy): :class:`BodyBudget`, each flow's
:class:`Holding`, the :class:`HeapTrimmer`. The addon is :mod:`chaoskit.proxy.budget_guard`, its
hooks into mitmproxy's HTTP stream :mod:`chaoskit.proxy.budget_streams`.

Configuration: ``BodyBudgetGuard(core, total=...)``, or the mitmproxy option
``chaoskit_body_budget`` (a size: ``256m``, ``1g``; ``0``: no global budget).
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import logging
from collections.abc import Callable

from chaoskit.proxy import replies
from chaoskit.proxy.replies import Reply

logger = logging.getLogger("chaoskit")

MiB = 1024 * 1024
#: The default budget: four requests at the per-request cap (64 MiB) at once.
DEFAULT_BODY_BUDGET = 256 * MiB
#: The mitmproxy option that sets the budget (a size; ``0``: no global budget).
BODY_BUDGET_OPTION = "chaoskit_body_budget"
#: Envoy's response flag for a request the overload manager refused.
OVERLOAD_FLAG = "OM"
#: Envoy's counters: ``stop_accepting_requests`` refusals, and bodies over a buffer limit.
OVERLOAD_STAT = "http.downstream_rq_overload_close"
TOO_LARGE_STAT = "http.downstream_rq_too_large"
#: A finished flow lets go of bodies this large (smaller ones are left as they are).
STRIP_THRESHOLD = 64 * 1024
#: An upstream body this small is always taken, overdrawing the budget if need be: its request
#: was admitted and forwarded, and refusing the reply for a few bytes (a 500 after the upstream
#: acted on the request) would be worse than an overdraft the admitted requests bound.
ALWAYS_FITS = 64 * 1024
#: Freed heap memory goes back to the OS once this many bytes of bodies were let go, this many
#: seconds later (so at most one trim per that many seconds).
TRIM_AFTER = MiB
TRIM_DELAY = 0.5


class BodyBudget:
    """Bytes of bodies held at once, across every flow; pure bookkeeping, no I/O.

    ``total`` ``0`` means no global budget (every reservation succeeds, and is still counted).
    """

    def __init__(self, total: int = DEFAULT_BODY_BUDGET) -> None:
        self.total = check_total(total)
        self.in_use = 0
        #: the most ever held at once
        self.peak = 0

    @property
    def unlimited(self) -> bool:
        return self.total == 0

    def fits_ever(self, n: int) -> bool:
        """Could ``n`` bytes be reserved with nothing else held?"""
        return self.unlimited or n <= self.total

    def reserve(self, n: int, *, force: bool = False) -> bool:
        """Take ``n`` bytes if they fit (or, with ``force``, even if they do not); ``False``
        (and nothing taken) if they do not."""
        if n < 0:
            raise ValueError(f"cannot reserve {n} bytes")
        if not (force or self.unlimited) and self.in_use + n > self.total:
            return False
        self.in_use += n
        self.peak = max(self.peak, self.in_use)
        return True

    def release(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot release {n} bytes")
        if n > self.in_use:  # a bug elsewhere must not make the budget grow
            logger.error("chaoskit: body budget released %d bytes, only %d held", n, self.in_use)
            n = self.in_use
        self.in_use -= n


def check_total(total: int) -> int:
    if total < 0:
        raise ValueError(f"the body budget must be 0 (none) or more bytes, not {total}")
    return total


def parse_size(text: str) -> int:
    """``"256m"``, ``"1g"``, ``"65536"``, ``"64k"`` → bytes (binary multiples, as mitmproxy's
    ``body_size_limit``)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = 1
    if value and value[-1] in "kmg":
        factor = 1024 ** ("kmg".index(value[-1]) + 1)
        value = value[:-1]
    if not value.isdigit():
        raise ValueError(f"{text!r} is not a size (e.g. 256m, 1g, 65536)")
    return check_total(int(value) * factor)


class Holding:
    """What one flow holds of the budget: every reservation made for it, released together,
    once. A reservation after the release (a mirror still reading when its flow ended) is not
    held: nothing would release it."""

    __slots__ = ("budget", "client", "closed", "held", "per_chunk", "request_bytes")

    def __init__(self, budget: BodyBudget, client: str = "", *, per_chunk: bool = False) -> None:
        self.budget = budget
        #: the client connection's id
        self.client = client
        #: the request body is counted as it arrives (its length was not announced)
        self.per_chunk = per_chunk
        self.held = 0
        #: of :attr:`held`, what the request body took
        self.request_bytes = 0
        self.closed = False

    def take(self, n: int, *, force: bool = False) -> bool:
        if self.closed or n == 0:
            return True
        if not self.budget.reserve(n, force=force):
            return False
        self.held += n
        return True

    def take_request(self, n: int) -> bool:
        if not self.take(n):
            return False
        self.request_bytes += n
        return True

    def release(self) -> int:
        """Give everything back (idempotent); how much that was."""
        held, self.held, self.closed = self.held, 0, True
        self.budget.release(held)
        return held


_holding: contextvars.ContextVar[Holding | None] = contextvars.ContextVar(
    "chaoskit_body_holding", default=None
)


def current_holding() -> Holding | None:
    """The holding of the flow whose hook is running (``None`` outside one): upstream bodies
    read by the pipeline are reserved from it."""
    return _holding.get()


def hold_for_current_task(holding: Holding | None) -> None:
    """Make ``holding`` the current one for the rest of this hook's task (and the tasks it
    starts, which copy the context)."""
    _holding.set(holding)


def overloaded() -> Reply:
    """Envoy's reply when the overload manager's ``stop_accepting_requests`` is active."""
    return replies.local_reply(503, "envoy overloaded", flags=(OVERLOAD_FLAG,), details="overload")


def payload_too_large() -> Reply:
    """Envoy's reply for a request body over a buffer limit (``requestDataTooLarge``)."""
    return replies.local_reply(413, "Payload Too Large", details="request_payload_too_large")


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or ``None`` where there is none (macOS, musl)."""
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: fn(0)


class HeapTrimmer:
    """Hands the heap memory large bodies occupied back to the OS once they are let go.

    Letting go of a body frees it, but glibc keeps freed blocks below its mmap threshold for
    reuse — the 64 KiB chunks every body arrives in, and any body up to 32 MiB once a larger one
    was freed — so after a burst of uploads RSS stays near its peak although nothing holds
    them (measured in-process: 295 MB, and 109 MB after one ``malloc_trim``, which took 10 ms).
    One trim :data:`TRIM_DELAY` after :data:`TRIM_AFTER` bytes were let go, so at most one per
    :data:`TRIM_DELAY` seconds however many bodies end."""

    def __init__(
        self,
        trim: Callable[[], object] | None,
        call_later: Callable[[float, Callable[[], None]], object],
    ) -> None:
        self._trim = trim
        self.call_later = call_later
        self.freed = 0
        self.pending = False
        self.trims = 0

    def freed_bytes(self, n: int) -> None:
        if self._trim is None:
            return
        self.freed += n
        if self.freed >= TRIM_AFTER and not self.pending:
            self.pending = True
            self.call_later(TRIM_DELAY, self._run)

    def _run(self) -> None:
        self.pending = False
        self.freed = 0
        self.trims += 1
        try:
            assert self._trim is not None
            self._trim()
        except Exception:  # pragma: no cover - giving memory back must never break the proxy
            logger.exception("chaoskit: malloc_trim failed")


def call_later(delay: float, fn: Callable[[], None]) -> object:
    return asyncio.get_running_loop().call_later(delay, fn)


def mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n % MiB else f"{n // MiB} MiB"
