"""The body budget's hooks into mitmproxy's HTTP stream (installed by
:mod:`chaoskit.proxy.patches`, ``stream.*`` there): what lets
:class:`~chaoskit.proxy.budget_guard.BodyBudgetGuard` answer before a body is read, count a body
chunk by chunk, and release a flow's bodies the moment its reply is sent."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol


class StreamGuard(Protocol):
    """What the stream hooks ask the running guard."""

    def answers_early(self, flow: Any) -> bool: ...

    def body_data(self, flow: Any, n: int) -> bool: ...

    def sent(self, flow: Any) -> None: ...


class _Active:
    """The running proxy's guard (one mitmproxy Master per process), for the stream hooks."""

    guard: StreamGuard | None = None


def set_active(guard: StreamGuard | None) -> None:
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
