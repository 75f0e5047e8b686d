"""Stop the proxy's start on the errors of *this* proxy, and say what they were.

mitmproxy's ``ErrorCheck`` addon ends ``Master.run`` with ``sys.exit(1)`` when any ERROR record
reaches the root logger while the Master starts. That suits ``mitmdump``, which owns its process.
chaoskit's proxy also runs inside other programs (the pytest plugin, a test suite's fixtures),
where a record from someone else can land in that window — ``asyncio`` reporting an object
collected late, from whichever thread ran the collector, or another thread's own errors. In CI
such a record (ErrorCheck does not say which) refused a start with nothing but ``proxy failed
to start: 1`` as the reason, and left that proxy's listening socket open.

:class:`StartupCheck` keeps ErrorCheck's job — a listener that cannot open or an addon that
fails to load stops the start — for records logged on the proxy's own thread by mitmproxy or
chaoskit, and raises :class:`~chaoskit.errors.ProxyError` with their messages instead of
leaving the process.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from chaoskit.errors import ProxyError

#: Loggers whose records are about the proxy (mitmproxy's own modules and chaoskit's).
_OWN_LOGGERS = ("mitmproxy", "chaoskit")


def _is_own(name: str) -> bool:
    return any(name == own or name.startswith(own + ".") for own in _OWN_LOGGERS)


class _Collector(logging.Handler):
    """Keeps the ERROR records that the proxy's thread logs through mitmproxy or chaoskit."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.ERROR)
        self.thread_id = thread_id
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        return (
            bool(super().filter(record))
            and record.thread == self.thread_id
            and _is_own(record.name)
        )

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class StartupCheck:
    """mitmproxy's ``errorcheck`` addon, narrowed to this proxy (see the module docstring).

    ``Master.run`` looks the addon up by the name ``errorcheck`` and awaits
    :meth:`shutdown_if_errored` after each start-up step, then calls :meth:`finish`.
    """

    name = "errorcheck"

    def __init__(self) -> None:
        # Created by ProxyRuntime.run, on the thread that runs the Master. A Master built and
        # never run (make_master in a test) never removes its handler: as mitmproxy allows one
        # Master per process, a new check replaces any earlier one, so at most one is left over.
        root = logging.getLogger()
        for stale in [h for h in root.handlers if isinstance(h, _Collector)]:
            root.removeHandler(stale)
        self._collector = _Collector(threading.get_ident())
        root.addHandler(self._collector)
        #: True once the start passed its last check: listeners open, every addon's
        #: ``running`` hook done. ProxyRuntime reports "ready" only then.
        self.started = False

    @property
    def records(self) -> list[logging.LogRecord]:
        return list(self._collector.records)

    async def shutdown_if_errored(self) -> None:
        await asyncio.sleep(0)  # as ErrorCheck: let records raised by pending callbacks land
        if self._collector.records:
            self._uninstall()
            messages = "; ".join(r.getMessage() for r in self._collector.records)
            raise ProxyError(f"error logged during start-up: {messages}")

    def finish(self) -> None:
        """``Master.run`` calls this once the last check of the start has passed."""
        self._uninstall()
        self.started = True

    def done(self) -> None:
        """mitmproxy's ``done`` hook: also when the start failed before ``finish``."""
        self._uninstall()

    def _uninstall(self) -> None:
        logging.getLogger().removeHandler(self._collector)
