"""A client's request trailers, carried to the HTTP/2 upstream exchange.

An HTTP/2 client may end its request with trailers (RFC 9113 §8.1: a second header block after
the body); mitmproxy's HTTP/2 layer keeps them on ``flow.request.trailers``. Envoy's router
forwards request trailers to an HTTP/2 upstream, and its HTTP/1 codec drops them unless
``Http1ProtocolOptions.enable_trailers`` is set, which Istio does not set: chaoskit does the
same (:func:`chaoskit.proxy.upstream_h2.send_h2` sends them; an HTTP/1.1 attempt, sent with
``content-length``, does not). HTTP/1.1 clients' trailers are dropped at the codec
(``http1.read_body`` in :mod:`chaoskit.proxy.patch_table`), as Envoy's default is.

The request path is mitmproxy-free and carries no trailers, so the flow's reach the exchange
the way the body budget's holding does: the enforcer calls :func:`take` in the flow's hook task
before the path runs, which makes them current for that task and its retries and mirrors
(tasks copy the context they start in).
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


def take(flow: http.HTTPFlow) -> None:
    """Make ``flow``'s request trailers current for the rest of its hook's task. Set even when
    there are none: a hook's task copies the context of whichever task started it, which may
    be another flow's."""
    trailers = flow.request.trailers
    set_current(tuple(trailers.items(multi=True)) if trailers else ())
