"""How :class:`~chaoskit.proxy.api.Proxy` changes its configuration: the base (the files or
sources it was started with, replaced by a reload), the admin API's runtime layer over it, and
``apply``'s sources over both — validated together and swapped in atomically, under one lock
so two changes made at once cannot lose each other's change.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from chaoskit.config import Validation
from chaoskit.config.loader import LoadResult
from chaoskit.proxy.admin_changes import RuntimeLayer
from chaoskit.proxy.binding import ListenerPlan, Listeners
from chaoskit.proxy.core import ChaosCore
from chaoskit.proxy.runtime import ProxyRuntime
from chaoskit.sources import to_results, validated

logger = logging.getLogger("chaoskit")


class ConfigLayers:
    """The configuration methods of :class:`~chaoskit.proxy.api.Proxy` (which sets these)."""

    _base: list[LoadResult]
    #: resources applied over the admin API, layered over the base (kept across reloads)
    layer: RuntimeLayer
    #: held by every configuration change (``apply``, a file reload, an admin change), so
    #: two changes made at once cannot build on the same old configuration and the later
    #: swap lose the earlier one's change (re-entrant: an admin change calls ``set_layer``)
    config_lock: threading.RLock
    runtime: ProxyRuntime | None
    core: ChaosCore
    validation: Validation
    _plan: ListenerPlan

    def _map_listeners(self, listeners: Listeners) -> None:
        raise NotImplementedError

    @property
    def base(self) -> list[LoadResult]:
        """The configuration the proxy was started with or last reloaded (files, sources)."""
        return list(self._base)

    def apply(self, *sources: Any) -> Validation:
        """Validate ``sources`` layered over the base config and swap them in atomically."""
        with self.config_lock:
            return self._apply(sources)

    def _apply(self, sources: tuple[Any, ...]) -> Validation:
        validation = validated(*sources, base=[*self._base, *self.layer.results(self._base)])
        mesh = validation.mesh
        if self.runtime is not None:
            self._plan.check_workloads(mesh)
            listeners = self._plan.listeners(mesh)
            if listeners.modes != self.runtime.modes:
                new = [m for m in listeners.modes if m not in self.runtime.modes]
                self._plan.check_free(new, listeners)
                self.runtime.run_coro(self.runtime.set_modes(listeners.modes))
                self._map_listeners(listeners)
            self.runtime.call(lambda: self.core.set_mesh(mesh))
        else:
            self.core.set_mesh(mesh)
        self.validation = validation
        return validation

    def rebase(self, *sources: Any) -> Validation:
        """Replace the base configuration (a reload of the files) and apply it."""
        base = to_results(sources)
        with self.config_lock:
            validated(base=[*base, *self.layer.results(base)])  # raises before anything changes
            old, self._base = self._base, base
            try:
                validation = self.apply()  # the admin API's layer is re-applied over the new files
            except BaseException:
                self._base = old
                raise
        log_duplicates(base)
        return validation

    def set_layer(self, layer: RuntimeLayer) -> Validation:
        """Swap in a new admin-API layer over the base, atomically like a reload; on any
        error (``ConfigError``, a Gateway port that cannot be bound) nothing changes."""
        with self.config_lock:
            old, self.layer = self.layer, layer
            try:
                return self.apply()
            except BaseException:
                self.layer = old
                raise


def log_duplicates(base: list[LoadResult]) -> None:
    """Say at start and at each reload that a folder defines a resource twice (``validate``
    says it too): the files are layered in path order, so one definition silently loses."""
    for result in base:
        for issue in result.duplicates:
            logger.warning("%s", issue)
