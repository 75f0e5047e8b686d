"""Clients that go away mid-request: everything the request was doing is cancelled.

Envoy resets the upstream request and frees its circuit-breaker slot when the downstream
connection closes; mitmproxy alone would let the hook run to completion (a 10 s fault delay,
then an upstream request nobody waits for). Requests run in mitmproxy's hook task; one sweeper
for the whole proxy checks the watched tasks' client connections every
:data:`DISCONNECT_POLL_SECONDS` and cancels those whose client left. That costs nothing per
request, where a watcher per request (a second task and a timed wait) cost about 3 % of the
proxy's CPU under load.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mitmproxy import http
from mitmproxy.connection import ConnectionState

#: How often a long-running request checks that its client is still connected.
DISCONNECT_POLL_SECONDS = 0.05

T = TypeVar("T")


class ClientWatch:
    def __init__(self) -> None:
        #: watched hook tasks → their flow and what to call when the client goes
        self._watched: dict[asyncio.Task[Any], tuple[http.HTTPFlow, Callable[[], None]]] = {}
        #: watched tasks cancelled because their client went away
        self._gone: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Future[None] | None = None

    async def run(
        self, flow: http.HTTPFlow, work: Awaitable[T], on_gone: Callable[[], None]
    ) -> tuple[T | None, bool]:
        """Await ``work`` in the current task, cancelling it if the client of ``flow``
        disconnects (``on_gone`` is called first). Returns ``(result, client_gone)``; a
        cancellation for any other reason (shutdown) propagates."""
        task = asyncio.current_task()
        assert task is not None  # mitmproxy runs every hook in a task of its own
        self._watched[task] = (flow, on_gone)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())
        result: T | None = None
        gone = False
        try:
            result = await work
        except asyncio.CancelledError:
            if task not in self._gone:
                raise  # cancelled for another reason (shutdown): not ours to swallow
        finally:
            self._watched.pop(task, None)
            if task in self._gone:  # our cancellation was delivered: take it back,
                gone = True  # however the work ended after it
                self._gone.discard(task)
                task.uncancel()
        return (None, True) if gone else (result, False)

    async def _sweep(self) -> None:
        """Cancel the requests whose client has gone; ends when nothing is being watched."""
        while self._watched:
            await asyncio.sleep(DISCONNECT_POLL_SECONDS)
            for task, (flow, on_gone) in list(self._watched.items()):
                if task in self._gone or flow.client_conn.state & ConnectionState.CAN_READ:
                    continue
                on_gone()
                self._gone.add(task)
                task.cancel()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
