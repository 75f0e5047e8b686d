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
  ``update`` hook.

The table assumes nested ``addons`` lists do not change after an addon is added, which holds
for the lean Master's addons (mitmproxy's script loader, which does change them, is not one of
them). Under ``mitmdump -s`` and mitmweb mitmproxy's own manager is used.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
from collections.abc import Callable
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
        args = event.args()
        await self._trigger(event.name, args)
        # The table first: no addon of the lean Master has ``update``, and isinstance against
        # mitmproxy's Flow is an ABC check (0.6 % of the proxy's CPU, for nothing).
        if self._table(hooks.UpdateHook.name) and isinstance(args[0], flow.Flow):
            await self._trigger(hooks.UpdateHook.name, [[args[0]]])

    async def trigger_event(self, event: hooks.Hook) -> None:
        await self._trigger(event.name, event.args())

    async def _trigger(self, name: str, args: list[Any]) -> None:
        for funcs in self._table(name):
            try:
                for func in funcs:
                    result = func(*args)
                    if result is not None and inspect.isawaitable(result):
                        await result
            except exceptions.AddonHalt:
                return
            except exceptions.OptionsError:
                raise
            except Exception as e:
                _, _, tb = sys.exc_info()
                tb = cut_traceback(tb, "_trigger")
                logger.error(f"Addon error: {e}", exc_info=(type(e), e, tb))


def use_dispatch(master: Master) -> None:
    """Give a freshly made Master (no addons yet) a :class:`DispatchAddonManager`."""
    old = master.addons
    if old.chain:
        raise RuntimeError("use_dispatch() must come before any addon is added")
    master.options.changed.disconnect(old._configure_all)
    master.addons = DispatchAddonManager(master)
