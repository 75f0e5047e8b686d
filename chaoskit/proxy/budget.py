"""A global budget for the request and response bodies the proxy holds in memory at once.

Why: chaoskit buffers every body it forwards (a fault, a retry or a relayed reply needs all of
it), and each is capped only on its own (64 MiB). Twenty concurrent 60 MB uploads took the proxy
to 2 GB. :class:`BodyBudget` bounds the sum, as Envoy's overload manager bounds its heap: a
request whose body would not fit is answered ``503 envoy overloaded`` (flag ``OM``, details
``overload``, counted in ``http.downstream_rq_overload_close``) — or ``413 Payload Too Large``
(details ``request_payload_too_large``, ``http.downstream_rq_too_large``) when it could never
fit — and an upstream body that does not fit is refused like one over the per-response cap
(:class:`chaoskit.proxy.upstream.ResponseTooLarge`).

How, per flow (:class:`BodyBudgetGuard`, placed before the core):

- ``requestheaders``: a body announced by ``content-length`` is reserved before mitmproxy reads
  a byte of it. If it does not fit, the reply goes out at once and the body is read and
  dropped, never buffered (mitmproxy would buffer the whole body before answering: see
  :func:`wrappers`); the connection is closed after it.
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

Configuration: ``BodyBudgetGuard(core, total=...)``, or the mitmproxy option
``chaoskit_body_budget`` (a size: ``256m``, ``1g``; ``0``: no global budget).
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from chaoskit.proxy import patches, replies
from chaoskit.proxy.replies import Reply

if TYPE_CHECKING:
    from mitmproxy import http

    from chaoskit.proxy.core import ChaosCore

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


def announced_length(request: http.Request) -> int | None:
    """The request body's size as its headers announce it, or ``None`` when they do not (chunked,
    HTTP/2 without ``content-length``, a malformed length: then it is counted as it arrives)."""
    headers = request.headers
    if "transfer-encoding" in headers:
        return None
    lengths = headers.get_all("content-length")
    if not lengths:
        return 0 if request.http_version.startswith("HTTP/1") else None
    if len(lengths) != 1 or not lengths[0].strip().isdigit():
        return None
    return int(lengths[0].strip())


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
        self._call_later = call_later
        self.freed = 0
        self.pending = False
        self.trims = 0

    def freed_bytes(self, n: int) -> None:
        if self._trim is None:
            return
        self.freed += n
        if self.freed >= TRIM_AFTER and not self.pending:
            self.pending = True
            self._call_later(TRIM_DELAY, self._run)

    def _run(self) -> None:
        self.pending = False
        self.freed = 0
        self.trims += 1
        try:
            assert self._trim is not None
            self._trim()
        except Exception:  # pragma: no cover - giving memory back must never break the proxy
            logger.exception("chaoskit: malloc_trim failed")


def _call_later(delay: float, fn: Callable[[], None]) -> object:
    return asyncio.get_running_loop().call_later(delay, fn)


def _mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n % MiB else f"{n // MiB} MiB"


class BodyBudgetGuard:
    """The mitmproxy addon: reserves and releases bodies per flow, refuses what does not fit
    (see the module docstring). Must come before :class:`~chaoskit.proxy.core.ChaosCore`."""

    def __init__(self, core: ChaosCore, total: int = DEFAULT_BODY_BUDGET) -> None:
        self.core = core
        self.budget = BodyBudget(total)
        self._default_total = self.budget.total
        #: flow id → what the flow holds
        self._holdings: dict[str, Holding] = {}
        #: client connection id → ids of its flows in :attr:`_holdings`
        self._by_client: dict[str, set[str]] = {}
        #: flows answered before their body was read (their body is read and dropped)
        self._early: set[str] = set()
        #: drop finished flows' bodies (off when a UI keeps flows to show them)
        self.strip_bodies = True
        #: mitmproxy's ``body_size_limit`` in bytes: a body announced over it is mitmproxy's to
        #: refuse (413, before the ``requestheaders`` hook returns), not the budget's
        self._body_size_limit: int | None = None
        self.trimmer = HeapTrimmer(malloc_trim(), _call_later)

    # -- options ---------------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            BODY_BUDGET_OPTION,
            str,
            "",
            "Request and response bodies held in memory at once, over all requests (a size: "
            f"256m, 1g; 0: no limit; default {_mib(self._default_total)}). A request whose body "
            "does not fit is answered 503 (flag OM); an upstream body that does not fit, 500.",
        )

    def configure(self, updated: set[str]) -> None:
        from mitmproxy import ctx, exceptions  # noqa: PLC0415 - mitmproxy only when running

        if BODY_BUDGET_OPTION in updated:
            text = str(getattr(ctx.options, BODY_BUDGET_OPTION))
            try:
                self.budget.total = parse_size(text) if text else self._default_total
            except ValueError as e:
                raise exceptions.OptionsError(f"{BODY_BUDGET_OPTION}: {e}") from None
        if "body_size_limit" in updated:
            limit = ctx.options.body_size_limit
            try:
                self._body_size_limit = parse_size(limit) if limit else None
            except ValueError:  # mitmproxy checks its own option
                self._body_size_limit = None

    def running(self) -> None:
        from mitmproxy import ctx  # noqa: PLC0415

        # mitmweb and the console keep every flow to show it: its bodies are theirs to keep.
        self.strip_bodies = ctx.master.addons.get("view") is None
        _set_active(self)
        total = _mib(self.budget.total) if not self.budget.unlimited else "unlimited"
        logger.info("chaoskit: body budget %s", total)

    def done(self) -> None:
        _set_active(None)

    # -- the flow's life ---------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        length = announced_length(flow.request)
        if length and self._body_size_limit is not None and length > self._body_size_limit:
            return  # mitmproxy answers 413 itself and ends the flow with an error
        client = flow.client_conn.id
        holding = Holding(self.budget, client, per_chunk=length is None)
        self._holdings[flow.id] = holding
        self._by_client.setdefault(client, set()).add(flow.id)
        if not length or holding.take_request(length):
            return
        if self.budget.fits_ever(length):
            self._refuse(flow, overloaded(), OVERLOAD_STAT, self._overload_note(length))
        else:
            note = (
                f"request body of {length} bytes is larger than the proxy's whole body budget "
                f"({_mib(self.budget.total)}): refused with 413 (request_payload_too_large)"
            )
            self._refuse(flow, payload_too_large(), TOO_LARGE_STAT, note)
        self._early.add(flow.id)
        flow.request.headers.pop("expect", None)  # no "100 Continue": the answer is final

    def body_data(self, flow: http.HTTPFlow, n: int) -> bool:
        """``n`` more bytes of a body whose length was not announced arrived; ``False`` when
        they do not fit (the flow then has its reply and is answered at once)."""
        holding = self._holdings.get(flow.id)
        if holding is None or not holding.per_chunk or flow.response is not None:
            return True
        if holding.take_request(n):
            return True
        held = holding.request_bytes
        self._refuse(flow, overloaded(), OVERLOAD_STAT, self._overload_note(held + n))
        self._early.add(flow.id)
        return False

    def answers_early(self, flow: http.HTTPFlow) -> bool:
        return flow.id in self._early

    def request(self, flow: http.HTTPFlow) -> None:
        holding = self._holdings.get(flow.id)
        # Set even when None: a hook's task copies the context of whichever task started it,
        # which may be another flow's.
        hold_for_current_task(holding)
        if holding is None:
            return
        if flow.response is None and flow.error is None:
            # A body nobody counted while it arrived (a mitmproxy without the stream hooks)
            # is counted now, before anything else holds it.
            uncounted = len(flow.request.raw_content or b"") - holding.request_bytes
            if uncounted > 0 and not holding.take_request(uncounted):
                self._refuse(
                    flow, overloaded(), OVERLOAD_STAT, self._overload_note(holding.request_bytes)
                )

    def response(self, flow: http.HTTPFlow) -> None:
        # The reply goes out after this hook: the stream hook releases what the flow holds
        # right after mitmproxy has handed the reply to the connection (:meth:`sent`). Without
        # it (a mitmproxy whose internals moved), now, and the bodies stay with the flow.
        if not patches.is_applied(patches.SEND_RESPONSE):
            self._finish(flow, strip=False)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finish(flow, strip=True)  # nothing of the flow is sent any more

    def sent(self, flow: http.HTTPFlow) -> None:
        """mitmproxy has handed the flow's reply to the client's connection."""
        self._finish(flow, strip=True)

    def client_disconnected(self, client: Any) -> None:
        """Whatever a flow of this connection still holds (a flow that ended without a reply
        or an ``error`` hook) is released: nothing of it can be sent any more."""
        for fid in self._by_client.pop(client.id, ()):
            holding = self._holdings.pop(fid, None)
            if holding is not None:
                self.trimmer.freed_bytes(holding.release())
            self._early.discard(fid)

    def _finish(self, flow: http.HTTPFlow, *, strip: bool) -> None:
        holding = self._holdings.pop(flow.id, None)
        self._early.discard(flow.id)
        if strip and self.strip_bodies:
            _drop_bodies(flow)
        if holding is None:
            return
        self.trimmer.freed_bytes(holding.release())
        flows = self._by_client.get(holding.client)
        if flows is not None:
            flows.discard(flow.id)
            if not flows:
                del self._by_client[holding.client]

    # -- refusing ----------------------------------------------------------------------------

    def _overload_note(self, size: int) -> str:
        return (
            f"request body of {size} bytes does not fit in the proxy's body budget "
            f"({_mib(self.budget.in_use)} of {_mib(self.budget.total)} held by requests in "
            "flight): refused with 503 (overload)"
        )

    def _refuse(self, flow: http.HTTPFlow, reply: Reply, stat: str, note: str) -> None:
        """Answer ``reply`` (recorded like every reply of the core) instead of reading on. A
        request Envoy's codec would reject gets that answer instead, as it comes first there."""
        from chaoskit.proxy.codec import protocol_violation  # noqa: PLC0415 - mitmproxy

        violation = protocol_violation(flow)
        if violation is not None:
            reply = violation
        else:
            self.core.pipeline.stats.inc(stat)
            logger.info("chaoskit: %s", note)
        if flow.request.http_version.startswith("HTTP/1") and not any(
            k.lower() == "connection" for k, _ in reply.headers
        ):
            # The rest of the body is read and dropped; the connection ends with it.
            reply = reply.with_headers([*reply.headers, ("connection", "close")])
        try:
            self.core.enforcer.refuse(flow, reply, note if violation is None else None)
        except Exception:
            logger.exception("chaoskit: could not record a request refused by the body budget")
            if flow.response is None:
                flow.response = _plain_response(flow, reply)


def _plain_response(flow: http.HTTPFlow, reply: Reply) -> http.Response:
    from mitmproxy import http  # noqa: PLC0415

    headers = [(k.encode(), v.encode()) for k, v in reply.headers] + [(b"server", b"envoy")]
    return http.Response.make(reply.status, reply.body, http.Headers(headers))


def _drop_bodies(flow: http.HTTPFlow) -> None:
    """Let go of a finished flow's large bodies. Nothing reads them any more in chaoskit's
    runtime, and the flow stays reachable from reference cycles in mitmproxy's protocol layers
    (each layer's state is a bound method of itself) until the cyclic collector runs: without
    this, each body's memory would wait for it. (The connection frees the reply's bytes once
    it has written them.)"""
    for message in (flow.request, flow.response):
        if message is not None:
            content = message.data.content
            if content is not None and len(content) >= STRIP_THRESHOLD:
                message.data.content = None


# -- answering before the body: mitmproxy's HTTP stream --------------------------------------


class _Active:
    """The running proxy's guard (one mitmproxy Master per process), for the stream hooks."""

    guard: BodyBudgetGuard | None = None


def _set_active(guard: BodyBudgetGuard | None) -> None:
    _Active.guard = guard


#: A wrapper: takes mitmproxy's original method, returns the method that replaces it.
Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


@functools.cache
def wrappers() -> dict[str, Wrap]:
    """Wrappers of four methods of mitmproxy's ``HttpStream``, by the name of the method each
    replaces (installed by :mod:`chaoskit.proxy.patches`, ``stream.*`` there).

    mitmproxy reads a request's whole body before it sends a reply an addon set in
    ``requestheaders``, keeps what it had read of a body that failed in the stream (which only
    the cyclic collector frees), and has no hook after a reply is sent. The wrappers:

    - after the ``requestheaders`` hook, send a reply the guard set there right away; the rest
      of the body is read by the HTTP/1 codec and dropped (the stream is gone), and the reply's
      ``connection: close`` ends the connection with the request;
    - count the chunks of a body with no announced length (:meth:`BodyBudgetGuard.body_data`)
      and answer the same way the moment one does not fit;
    - empty the stream's body buffers when it fails (client gone, protocol error, over
      ``body_size_limit``);
    - tell the guard when the reply has been handed to the connection
      (:meth:`BodyBudgetGuard.sent`): its holding is released and its bodies let go then.

    A mitmproxy whose internals moved is left as it is: refused requests are then answered
    after their body was read, failed streams wait for the collector, and a flow's holding is
    released in the ``response`` hook (its bodies stay with it)."""
    try:
        from mitmproxy.proxy.layers import http as layers  # noqa: PLC0415
        from mitmproxy.proxy.layers.http._hooks import HttpResponseHeadersHook  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a mitmproxy whose internals moved
        return {}
    request_data: Any = getattr(layers, "RequestData", None)
    if request_data is None:  # pragma: no cover
        return {}

    def drop_buffers(self: Any) -> None:
        for name in ("request_body_buf", "response_body_buf"):
            buf = getattr(self, name, None)
            if buf is not None and len(buf):
                buf.clear()

    def answer_now(self: Any) -> Iterator[Any]:
        """Send the reply set on the flow now; whatever of the body still comes is dropped."""
        drop_buffers(self)
        # ``state_done`` makes send_response end (and drop) the stream; it takes no events,
        # so the body data that arrives meanwhile waits in the stream's queue (it is paused
        # for the hooks) until ``state_errored``, which drops every event, takes over.
        self.client_state = self.state_done
        self.flow.response.timestamp_start = time.time()
        yield HttpResponseHeadersHook(self.flow)
        if not (yield from self.check_killed(True)):
            yield from self.send_response()
        self.client_state = self.state_errored

    def wrap_headers(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def state_wait_for_request_headers(self: Any, event: Any) -> Iterator[Any]:
            yield from original(self, event)
            guard = _Active.guard
            flow = getattr(self, "flow", None)
            if (
                guard is not None
                and flow is not None
                and flow.response is not None
                and self.client_state == self.state_consume_request_body
                and guard.answers_early(flow)
            ):
                yield from answer_now(self)

        return state_wait_for_request_headers

    def wrap_consume(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        # A plain function, not a generator: only body data needs the wrapper. The end of the
        # body (which runs the request hook and sends the reply, all in this generator) goes
        # to mitmproxy's generator as it is: it empties the body buffer before its first
        # command, so there is nothing for drop_buffers to drop after it.
        def state_consume_request_body(self: Any, event: Any) -> Iterator[Any]:
            if isinstance(event, request_data):
                return consume_data(self, event)
            return original(self, event)

        def consume_data(self: Any, event: Any) -> Iterator[Any]:
            guard = _Active.guard
            if guard is not None and not guard.body_data(self.flow, len(event.data)):
                yield from answer_now(self)
                return
            yield from original(self, event)
            if self.client_state == self.state_errored:  # over body_size_limit
                drop_buffers(self)

        return state_consume_request_body

    def wrap_error(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def handle_protocol_error(self: Any, event: Any) -> Iterator[Any]:
            yield from original(self, event)
            drop_buffers(self)

        return handle_protocol_error

    def wrap_send(original: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
        def send_response(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            # Each command is carried out before the generator goes on: once the original
            # returns, the reply's bytes are with the connection (or the flow was killed).
            yield from original(self, *args, **kwargs)
            guard = _Active.guard
            if guard is not None:
                guard.sent(self.flow)

        return send_response

    return {
        "state_wait_for_request_headers": wrap_headers,
        "state_consume_request_body": wrap_consume,
        "handle_protocol_error": wrap_error,
        "send_response": wrap_send,
    }
