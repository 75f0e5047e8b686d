"""Where a WebSocket handshake leaves chaoskit's request path: at the upstream client.

A handshake goes through the whole request path like any request — loop check, route
(VirtualService matches, weighted destinations, subsets), fault filter, request header
operations, circuit breakers, the load balancer's endpoint, UpstreamFault (a delay, an abort
refusing the upgrade, a connect failure) — up to the moment one attempt would be sent. There
:class:`HandoffClient` does not send it: it keeps the attempt's endpoint, path and headers in the
request's :class:`Handoff` and answers ``101``, and the enforcer then lets mitmproxy connect to
that endpoint itself, so that mitmproxy's WebSocket layer relays the frames
(:mod:`chaoskit.proxy.websocket_relay`).

Only the attempt of the request that started the handoff is kept: a mirror's copy runs in a task
of its own (:mod:`chaoskit.proxy.mirror`) and is sent as it always is.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Sequence

from chaoskit.proxy.upstream import UpstreamClient, UpstreamResponse

#: What the synthetic answer of a handed-over attempt carries (the real 101 comes later).
HANDED_OVER = UpstreamResponse(101, "Switching Protocols", (), b"")


@dataclasses.dataclass(slots=True)
class Target:
    """The endpoint and request an attempt would have sent."""

    scheme: str
    address: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...]


@dataclasses.dataclass(slots=True)
class Handoff:
    """One WebSocket handshake on its way through the request path (set for its hook task)."""

    task: asyncio.Task[object] | None
    target: Target | None = None


_CURRENT: contextvars.ContextVar[Handoff | None] = contextvars.ContextVar(
    "chaoskit_websocket_handoff", default=None
)


def start() -> tuple[Handoff, contextvars.Token[Handoff | None]]:
    """Mark the running task's request as a WebSocket handshake; :func:`end` with the token."""
    handoff = Handoff(asyncio.current_task())
    return handoff, _CURRENT.set(handoff)


def end(token: contextvars.Token[Handoff | None]) -> None:
    _CURRENT.reset(token)


class HandoffClient(UpstreamClient):
    """The upstream client, except for the attempt of a WebSocket handshake (see the module
    docstring): that one is kept in its :class:`Handoff`, not sent."""

    async def send(
        self,
        method: str,
        scheme: str,
        address: str,
        port: int,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        connect_timeout: float | None,
        *,
        streamable: bool = False,
        http2: bool = False,
    ) -> UpstreamResponse:
        handoff = _CURRENT.get()
        if handoff is None or handoff.task is not asyncio.current_task():
            return await super().send(
                method, scheme, address, port, path, headers, body, connect_timeout,
                streamable=streamable, http2=http2,
            )  # fmt: skip
        handoff.target = Target(scheme, address, port, path, tuple(headers))
        return HANDED_OVER
