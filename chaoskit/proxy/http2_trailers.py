"""A client's request trailers, carried to the HTTP/2 upstream exchange.

An HTTP/2 client may end its request with trailers (RFC 9113 §8.1: a second header block after
the body); mitmproxy's HTTP/2 layer keeps them on ``flow.request.trailers``. Envoy's router
forwards request trailers to an HTTP/2 upstream, and its HTTP/1 codec drops them unless
``Http1ProtocolOptions.enable_trailers`` is set, which Istio does not set: chaoskit does the
same (:func:`chaoskit.proxy.upstream_h2.send_h2` sends them; an HTTP/1.1 attempt, sent with
``content-length``, does not). HTTP/1.1 clients' trailers are dropped at the codec
(``http1.read_body`` in :mod:`chaoskit.proxy.patch_table`), as Envoy's default is.

The request path is mitmproxy-free and carries no trailers, so the flow's reach the exchange
the way the body budget's holding does: :class:`RequestTrailers` (an addon that runs before the
enforcer, in the same hook task) sets them for the task that handles the flow, and its retries
and mirrors (tasks copy the context they start in).
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mitmproxy import http

Fields = tuple[tuple[str, str], ...]

_trailers: contextvars.ContextVar[Fields] = contextvars.ContextVar(
    "chaoskit_request_trailers", default=()
)


def current() -> Fields:
    """The request trailers of the flow whose hook is running (``()``: none, or no flow)."""
    return _trailers.get()


def set_current(trailers: Fields) -> None:
    """Make ``trailers`` the current ones for the rest of this hook's task."""
    _trailers.set(trailers)


class RequestTrailers:
    """The mitmproxy addon: the flow's request trailers become :func:`current` for its
    ``request`` hook. Must come before the enforcer (``ChaosCore`` puts it there)."""

    def request(self, flow: http.HTTPFlow) -> None:
        trailers = flow.request.trailers
        # Set even when empty: a hook's task copies the context of whichever task started
        # it, which may be another flow's.
        set_current(tuple(trailers.items(multi=True)) if trailers else ())
