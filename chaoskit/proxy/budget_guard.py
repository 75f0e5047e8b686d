"""The body budget's mitmproxy addon: reserves and releases each flow's bodies, and refuses what
does not fit before it is buffered (the accounting is :mod:`chaoskit.proxy.budget`, the
whole story in its docstring)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from chaoskit.proxy import patches
from chaoskit.proxy.budget import (
    BODY_BUDGET_OPTION,
    DEFAULT_BODY_BUDGET,
    OVERLOAD_STAT,
    STRIP_THRESHOLD,
    TOO_LARGE_STAT,
    BodyBudget,
    HeapTrimmer,
    Holding,
    call_later,
    hold_for_current_task,
    malloc_trim,
    mib,
    overloaded,
    parse_size,
    payload_too_large,
)
from chaoskit.proxy.budget_streams import set_active
from chaoskit.proxy.replies import Reply

if TYPE_CHECKING:
    from mitmproxy import http

    from chaoskit.proxy.core import ChaosCore

logger = logging.getLogger("chaoskit")


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
        self.trimmer = HeapTrimmer(malloc_trim(), call_later)

    # -- options ---------------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            BODY_BUDGET_OPTION,
            str,
            "",
            "Request and response bodies held in memory at once, over all requests (a size: "
            f"256m, 1g; 0: no limit; default {mib(self._default_total)}). A request whose body "
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
        set_active(self)
        total = mib(self.budget.total) if not self.budget.unlimited else "unlimited"
        logger.info("chaoskit: body budget %s", total)

    def done(self) -> None:
        set_active(None)

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
                f"({mib(self.budget.total)}): refused with 413 (request_payload_too_large)"
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
            f"({mib(self.budget.in_use)} of {mib(self.budget.total)} held by requests in "
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
