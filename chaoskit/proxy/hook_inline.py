"""Finish a hook in the event that raised it, when its handlers return at once.

mitmproxy runs every hook a layer raises (``StartHook``) as a task: ``hook_task`` calls the
addons (``handle_hook``), waits until the flow is resumed, then takes the connection's event
lock again to feed ``HookCompleted`` back through the whole layer stack, on a later turn of the
loop. The task factory is eager, so the addons already run at once, inside the event that
raised the hook; what the task adds is the task itself, its coroutines, and a hand-over of the
event lock through a future and a loop callback. A gRPC call raises four flow hooks
(``requestheaders``, ``request``, ``responseheaders``, ``response``); three of them have only
handlers that return at once (``responseheaders`` none at all on the lean Master), and their
round trips were about a fifth of the proxy's CPU per call over TLS (docs/performance.md).

:func:`install` wraps the root layer of one connection. A hook the root layer yields is run
where mitmproxy's eager task would run it, through
:meth:`~chaoskit.proxy.dispatch.DispatchAddonManager.start_lifecycle`. If every handler
returned and the flow is not intercepted, its ``HookCompleted`` goes through the layers
right after the commands of the current event, under the same lock hold — the order an
instant hook task would give when no other event is queued. Otherwise a task finishes it
exactly as ``hook_task`` does: awaits the handler that suspended and the handlers after it,
waits for an intercepted flow to be resumed, and feeds ``HookCompleted`` through
``server_event``.

Only a Master with :class:`~chaoskit.proxy.dispatch.DispatchAddonManager` (the lean Master of
the CLI and the pytest plugin) gets it; under ``mitmdump -s`` and mitmweb mitmproxy's path
runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from mitmproxy import flow
from mitmproxy.proxy import commands, events

from chaoskit.proxy.dispatch import DispatchAddonManager

logger = logging.getLogger(__name__)

#: A layer's ``handle_event``: an event in, the commands it causes out.
HandleEvent = Callable[[events.Event], Iterator[commands.Command]]

#: Hook tasks still running: referenced here so that they are not collected mid-way.
_RUNNING: set[asyncio.Task[None]] = set()


def install(handler: Any) -> bool:
    """Wrap ``handler``'s root layer (call when the connection starts, after mitmproxy set
    its top layer). Returns whether it did: only with chaoskit's dispatch manager."""
    addons = getattr(getattr(handler, "master", None), "addons", None)
    if not isinstance(addons, DispatchAddonManager):
        return False
    root = handler.layer
    root.handle_event = _inline(handler, addons, root.handle_event)
    return True


def _inline(handler: Any, addons: DispatchAddonManager, inner: HandleEvent) -> HandleEvent:
    def handle_event(event: events.Event) -> Iterator[commands.Command]:
        queue: deque[events.Event] = deque((event,))
        while queue:
            for command in inner(queue.popleft()):
                if not isinstance(command, commands.StartHook):
                    yield command
                elif _run(handler, addons, command) and command.blocking:
                    queue.append(events.HookCompleted(command))

    return handle_event


def _run(handler: Any, addons: DispatchAddonManager, hook: commands.StartHook) -> bool:
    """Run the hook's handlers; True when the hook is done now, False when a task (started
    here) finishes it and sends its ``HookCompleted`` itself."""
    args = hook.args()  # mitmproxy's hooks carry one argument (handle_hook unpacks it)
    data = args[0] if len(args) == 1 else None
    try:
        rest = addons.start_lifecycle(hook)
    except Exception:
        # An OptionsError from a handler: mitmproxy's hook task would die with it and leave
        # the flow waiting forever; say so and let the flow go on.
        logger.exception("Addon error in %s", hook.name)
        rest = None
    waits = isinstance(data, flow.Flow) and data.intercepted
    if rest is None and not waits:
        return True
    task = asyncio.create_task(_finish(handler, hook, rest, data), name=f"handle_hook({hook.name})")
    if not task.done():  # the loop holds tasks weakly (mitmproxy keeps its hook tasks too)
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
    return False


async def _finish(
    handler: Any, hook: commands.StartHook, rest: Coroutine[Any, Any, None] | None, data: Any
) -> None:
    """The rest of mitmproxy's ``hook_task`` for a hook whose handlers did not all return."""
    with handler.timeout_watchdog.disarm():
        if rest is not None:
            await rest
        if isinstance(data, flow.Flow):
            await data.wait_for_resume()
    if hook.blocking:
        await handler.server_event(events.HookCompleted(hook))


def wrap_handle_client(original: Callable[..., Any]) -> Callable[..., Any]:
    """The patch ``hooks.inline``: :func:`install` on each client connection's handler."""

    async def handle_client(self: Any) -> None:
        install(self)
        await original(self)

    return handle_client
