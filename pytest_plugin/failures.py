"""A ``ConfigError`` in a test reads as the message and the user's own lines, nothing else.

The error's text already says everything (``FILE:LINE: Kind/name: field.path: message`` for each
problem). pytest's default report adds every frame between the user's code and the ``raise`` —
the handle, the proxy, the loader — each with its source and its arguments (whole
configurations): pages of chaoskit internals above the one line that matters. The report keeps
the frames of the user's code (the test, its fixtures and helpers) and drops chaoskit's and
pytest's, as ``pytest.fail(msg, pytrace=False)`` would drop all of them. ``--fulltrace``, and
the traceback styles other than ``auto``/``long``/``short``, keep pytest's own report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr, Traceback, TracebackEntry

#: Traceback styles this report knows how to write (pytest's ``--tb``).
_STYLES = {"auto": "long", "long": "long", "short": "short"}


def is_config_error(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """Is it chaoskit's ``ConfigError``? (Not imported to ask: if chaoskit is not loaded, no.)"""
    errors = sys.modules.get("chaoskit.errors")
    return errors is not None and isinstance(excinfo.value, errors.ConfigError)


def internal_dirs() -> tuple[str, ...]:
    """The folders whose frames a user does not need: chaoskit, this plugin, pytest, pluggy."""
    # all loaded already when one of chaoskit's errors reaches a report
    import _pytest  # noqa: PLC0415
    import pluggy  # noqa: PLC0415

    import chaoskit  # noqa: PLC0415

    files = (chaoskit.__file__, __file__, _pytest.__file__, pluggy.__file__)
    return tuple(str(Path(str(f)).parent) + os.sep for f in files)


def users_frames(excinfo: pytest.ExceptionInfo[BaseException]) -> Traceback:
    """The traceback without internal and ``__tracebackhide__`` frames."""
    inside = internal_dirs()

    def keep(entry: TracebackEntry) -> bool:
        return not str(entry.path).startswith(inside) and not entry.ishidden(excinfo)

    return excinfo.traceback.filter(keep)


def config_error_repr(
    item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]
) -> TerminalRepr | str | None:
    """The failure report for a ``ConfigError``: the user's frames and the message (just the
    message if no frame is the user's); ``None`` to keep pytest's own report."""
    config = item.config
    style = _STYLES.get(str(config.getoption("tbstyle", "auto")))
    if style is None or config.getoption("fulltrace", False):
        return None
    own = users_frames(excinfo)
    if not own:
        return excinfo.exconly()
    if config.getoption("tbstyle", "auto") == "auto" and len(own) > 2:
        # as pytest does: the first and the last frame in full, the ones between in one line
        own = type(own)([own[0], *(e.with_repr_style("short") for e in own[1:-1]), own[-1]])
    return excinfo.getrepr(
        style=style,  # type: ignore[arg-type]
        showlocals=bool(config.getoption("showlocals", False)),
        funcargs=True,
        tbfilter=lambda _: own,
        truncate_locals=config.get_verbosity() < 2,
        chain=False,
    )
