"""Hook dispatch for the lean Master: call only the addons that implement a hook.

mitmproxy's ``AddonManager`` looks for a hook on every addon of the chain, for every event:
per request four flow hooks (``requestheaders``, ``request``, ``responseheaders``,
``response``), each followed by an ``update`` event that no addon of ours implements, and each
walk enters a ``contextlib`` context manager per addon. Profiled under load
(docs/performance.md) that walk cost about 17 % of the proxy's CPU — more than chaoskit's own
routing. :class:`DispatchAddonManager` does the same calls in the same order with the same
error handling, from a table built once per change of the addon chain:

- addons are visited in chain order, each with its nested ``addons`` (as ``traverse`` does);
- an exception in an addon is logged as ``Addon error: …`` and the next top-level addon still
  runs (mitmproxy's ``safecall``); ``AddonHalt`` stops the event; ``OptionsError`` propagates;
- awaitable results are awaited; a module attribute named like a hook is ignored; another
  non-callable one is an ``AddonManagerError``, logged like any addon error;
- ``handle_lifecycle`` sends the ``update`` event after a flow event only when some addon has an
  ``update`` hook;
- :meth:`DispatchAddonManager.start_lifecycle` is ``handle_lifecycle`` split at the first
  handler that returns an awaitable: what runs at once runs, the rest comes back as a coroutine
  (:mod:`chaoskit.proxy.hook_inline` needs no task for a hook whose handlers all return).

The table assumes nested ``addons`` lists do not change after an addon is added, which holds
for the lean Master's addons (mitmproxy's script loader, which does change them, is not one of
them). Under ``mitmdump -s`` and mitmweb mitmproxy's own manager is used.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from mitmproxy import exceptions, flow, hooks
from mitmproxy.addonmanager import AddonManager, cut_traceback, traverse
from mitmproxy.master import Master

logger = logging.getLogger("mitmproxy.addonmanager")  # where mitmproxy logs addon errors

#: For one event name: per top-level addon, the hook callables of it and its nested addons.
_Table = list[list[Callable[..., Any]]]


class _NotCallable:
    """Stands in for a hook attribute that is not callable: raises when the hook fires, so the
    error is logged at the same moment mitmproxy would log it."""

    def __init__(self, addon: Any, name: str) -> None:
        self.message = f"Addon handler {name} ({addon}) not callable"

    def __call__(self, *args: Any) -> None:
        raise exceptions.AddonManagerError(self.message)


class DispatchAddonManager(AddonManager):
    """mitmproxy's addon manager with a per-event dispatch table (see the module docstring)."""

    def __init__(self, master: Any) -> None:
        super().__init__(master)
        self._tables: dict[str, _Table] = {}

    # -- keeping the table in step with the chain ---------------------------------------------

    def add(self, *addons: Any) -> None:
        self._tables.clear()
        try:
            super().add(*addons)
        finally:
            self._tables.clear()

    def remove(self, addon: Any) -> None:
        self._tables.clear()
        try:
            super().remove(addon)
        finally:
            self._tables.clear()

    def clear(self) -> None:
        super().clear()
        self._tables.clear()

    def _table(self, name: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            table = []
            for top in self.chain:
                funcs: list[Callable[..., Any]] = []
                for addon in traverse([top]):
                    func = getattr(addon, name, None)
                    if not func or isinstance(func, types.ModuleType):
                        continue
                    funcs.append(func if callable(func) else _NotCallable(addon, name))
                if funcs:
                    table.append(funcs)
            self._tables[name] = table
        return table

    # -- dispatch -------------------------------------------------------------------------

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        rest = self.start_lifecycle(event)
        if rest is not None:
            await rest

    def start_lifecycle(self, event: hooks.Hook) -> Coroutine[Any, Any, None] | None:
        """Call ``handle_lifecycle``'s handlers synchronously, as far as they go: None when
        every handler returned (the event is handled), else a coroutine that awaits the
        awaitable a handler returned and goes on with the rest. What an eager task running
        ``handle_lifecycle`` does up to its first suspension, without the task
        (:mod:`chaoskit.proxy.hook_inline` finishes hooks in the event that raised them)."""
        args = event.args()
        rest = self._start(event.name, args)
        # The table first: no addon of the lean Master has ``update``, and isinstance against
        # mitmproxy's Flow is an ABC check (0.6 % of the proxy's CPU, for nothing).
        if not (self._table(hooks.UpdateHook.name) and isinstance(args[0], flow.Flow)):
            return rest
        if rest is None:
            return self._start(hooks.UpdateHook.name, [[args[0]]])
        return self._then_update(rest, args[0])

    async def _then_update(self, rest: Coroutine[Any, Any, None], data: flow.Flow) -> None:
        await rest
        more = self._start(hooks.UpdateHook.name, [[data]])
        if more is not None:
            await more

    async def trigger_event(self, event: hooks.Hook) -> None:
        rest = self._start(event.name, event.args())
        if rest is not None:
            await rest

    def _start(
        self, name: str, args: list[Any], group: int = 0, at: int = 0
    ) -> Coroutine[Any, Any, None] | None:
        """Call the handlers of ``name`` from handler ``at`` of top-level addon ``group`` on,
        until one returns an awaitable; then return :meth:`_resume` for it (None when all
        ran). An error skips the rest of its top-level addon (mitmproxy's ``safecall``)."""
        table = self._table(name)
        for g in range(group, len(table)):
            funcs = table[g]
            try:
                for i in range(at if g == group else 0, len(funcs)):
                    result = funcs[i](*args)
                    if result is not None and inspect.isawaitable(result):
                        return self._resume(name, args, g, i, result)
            except exceptions.AddonHalt:
                return None
            except exceptions.OptionsError:
                raise
            except Exception as e:
                _log_addon_error(e, "_start")
        return None

    async def _resume(
        self, name: str, args: list[Any], group: int, at: int, pending: Awaitable[Any]
    ) -> None:
        try:
            await pending
        except exceptions.AddonHalt:
            return
        except exceptions.OptionsError:
            raise
        except Exception as e:
            _log_addon_error(e, "_resume")
            group, at = group + 1, 0
        else:
            at += 1
        rest = self._start(name, args, group, at)
        if rest is not None:
            await rest


def _log_addon_error(e: Exception, frame: str) -> None:
    """Log as mitmproxy's ``safecall`` does, the traceback cut below our ``frame``."""
    tb = cut_traceback(sys.exc_info()[2], frame)
    logger.error(f"Addon error: {e}", exc_info=(type(e), e, tb))


def use_dispatch(master: Master) -> None:
    """Give a freshly made Master (no addons yet) a :class:`DispatchAddonManager`."""
    old = master.addons
    if old.chain:
        raise RuntimeError("use_dispatch() must come before any addon is added")
    master.options.changed.disconnect(old._configure_all)
    master.addons = DispatchAddonManager(master)
