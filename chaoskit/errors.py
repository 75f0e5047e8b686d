"""The exceptions chaoskit raises, kept small on purpose::

    ChaosKitError
     ├── ConfigError        invalid or unreadable configuration; carries every Issue found
     └── ProxyError         the proxy could not start or stopped unexpectedly

Parsers below the loader never raise for bad input: they record issues. Only the edge
(:func:`chaoskit.config.load`) turns a list with errors into one :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors must import nothing at run time: everything imports errors
    from chaoskit.config.issues import Issue


class ChaosKitError(Exception):
    """Base of every error chaoskit raises on purpose."""


class ConfigError(ChaosKitError):
    """Configuration that cannot be used; ``issues`` lists every problem, not just the first."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues = list(issues)
        errors = [i for i in self.issues if i.severity == "error"] or self.issues
        lines = [str(i) for i in errors]
        head = f"{len(errors)} configuration error{'s' if len(errors) != 1 else ''}"
        super().__init__(head + ":\n" + "\n".join("  " + line for line in lines))


class ProxyError(ChaosKitError):
    """The proxy could not start, or failed while running."""


class GatewayPortError(ProxyError):
    """A Gateway's port cannot be bound (taken, privileged, or moved out of range);
    ``config_port`` is the port as the YAML writes it."""

    def __init__(self, message: str, config_port: int) -> None:
        super().__init__(message)
        self.config_port = config_port
