"""Hosting the addons in a lean mitmproxy Master, in the foreground (CLI) or a thread (tests).

Why a lean Master and not DumpMaster: five built-in addons instead of 34 gives about 1.8× the
throughput with the same hooks (docs/performance.md); a dispatch table that calls only the addons
implementing a hook (:mod:`chaoskit.proxy.dispatch`) takes off most of what remains of the hook
walk. chaoskit's patches of mitmproxy's internals (:mod:`chaoskit.proxy.patches`) are applied
here, explicitly, before the Master is built. Why the careful stop: mitmproxy's
Proxyserver does not close its listening sockets on ``done``, so we close servers and client
connections ourselves, and the ports are free again the moment ``stop()`` returns.

Listeners: one regular (forward) proxy for the mesh, one reverse-proxy listener per Gateway
HTTP server port, and the admin listener. The reverse target of those listeners is never
contacted (``connection_strategy=lazy`` and the core answers every flow itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from mitmproxy import options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from mitmproxy.proxy import mode_specs

from chaoskit.errors import ProxyError
from chaoskit.proxy import patches
from chaoskit.proxy.startup_check import StartupCheck

T = TypeVar("T")
logger = logging.getLogger("chaoskit")

#: Runtimes started with ``start()`` and not yet stopped (one at most: see ``start``).
_RUNNING: set[int] = set()
_RUNNING_LOCK = threading.Lock()

#: Placeholder reverse target: never dialled, because the core answers every flow.
_NOWHERE = "http://127.0.0.1:9"


def regular_mode(host: str, port: int) -> str:
    return f"regular@{host}:{port}"


def reverse_mode(host: str, port: int) -> str:
    return f"reverse:{_NOWHERE}@{host}:{port}"


def make_master(opts: options.Options) -> Master:
    master = Master(opts)
    # The process-wide patches, and this Master's hook dispatch (dispatch.py), before any addon.
    patches.apply(master)
    master.addons.add(
        core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig(),
        StartupCheck(),
    )  # fmt: skip
    return master


def skip_debug_typechecks() -> bool:
    """Turn off mitmproxy's run-time type checks of HTTP message fields, process-wide (the
    patch ``message.skip_typechecks`` of :mod:`chaoskit.proxy.patches`, with its version guard).

    mitmproxy defines ``MessageData.__post_init__`` only ``if __debug__`` — a developer check
    that ``python -O`` leaves out — and it type-checks every field of every parsed request
    against its annotation: about 5 % of the proxy's CPU under load (docs/performance.md).
    ``chaoskit proxy`` owns its process and calls this; an in-process proxy (the pytest
    plugin) leaves the test process as it is. Returns whether the checks are off now."""
    patches.apply(own_process=True)
    return patches.is_applied("message.skip_typechecks")


class ProxyRuntime:
    """One Master with the given addons and listener modes, on its own event loop."""

    def __init__(
        self,
        addons: Sequence[Any],
        modes: Sequence[str],
        *,
        confdir: str,
        web_port: int | None = None,
    ) -> None:
        self.addons = list(addons)
        #: Serve mitmweb's UI on 127.0.0.1:web_port (flows are kept in memory for the UI).
        self.web_port = web_port
        self.modes = list(modes)
        self.confdir = confdir
        self.loop: asyncio.AbstractEventLoop | None = None
        self.master: Master | None = None
        #: mode spec → bound (host, port), filled once listening
        self.bound: dict[str, tuple[str, int]] = {}
        self._updates: set[asyncio.Future[bool]] = set()  # listener updates still running
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Run on the current loop until shut down (the CLI calls this directly)."""
        self.loop = asyncio.get_running_loop()
        patches.apply()  # before the first connection; make_master adds the Master's own
        opts = options.Options(listen_host="127.0.0.1", mode=self.modes, confdir=self.confdir)
        if self.web_port is not None:
            from mitmproxy.tools.web.master import WebMaster  # noqa: PLC0415 - only for --web

            self.master = WebMaster(opts, with_termlog=False)
            stock = self.master.addons.get("errorcheck")
            stock.finish()  # its handler on the root logger, which remove() leaves in place
            self.master.addons.remove(stock)
            self.master.addons.add(StartupCheck())
        else:
            self.master = make_master(opts)
        self.master.addons.add(*self.addons)
        opts.update(connection_strategy="lazy", keep_host_header=True, ssl_insecure=True)
        if self.web_port is not None:
            opts.update(web_port=self.web_port, web_host="127.0.0.1", web_open_browser=False)
        run = asyncio.ensure_future(self.master.run())
        ps = self.master.addons.get("proxyserver")
        check: StartupCheck = self.master.addons.get("errorcheck")
        try:
            while not (check.started and len(ps.servers) and all(s.is_running for s in ps.servers)):
                if run.done():
                    run.result()  # raise why startup failed
                    raise ProxyError("proxy stopped during start-up")
                await asyncio.sleep(0.005)
            self.bound = {
                s.mode.full_spec: (str(s.listen_addrs[0][0]), int(s.listen_addrs[0][1]))
                for s in ps.servers
            }
        except BaseException:
            self.master.shutdown()
            with contextlib.suppress(BaseException):
                await run
            with contextlib.suppress(Exception):  # listeners opened before the start failed
                await ps.servers.update([])
            raise
        if on_ready is not None:
            on_ready()
        await run

    def start(self, timeout: float = 15.0) -> None:
        """Start in a daemon thread; returns when every listener accepts connections and every
        addon's ``running`` hook has run (the Master's last start-up check passed)."""
        with _RUNNING_LOCK:
            if _RUNNING:
                # mitmproxy keeps its Master in module globals (ctx.master): a second proxy in
                # the same process would take over the first one's connections.
                raise ProxyError(
                    "a chaoskit proxy is already running in this process; mitmproxy allows one "
                    "per process (stop it first, or share it)"
                )
            _RUNNING.add(id(self))

        def main() -> None:
            try:
                asyncio.run(self.run(on_ready=self._ready.set))
            except BaseException as e:
                self._error = e
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(id(self))
                self._stopped.set()
                self._ready.set()

        self._thread = threading.Thread(target=main, name="chaoskit-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ProxyError(f"proxy did not start within {timeout:g}s")
        if self._error is not None or self._stopped.is_set():
            raise ProxyError(f"proxy failed to start: {self._error}") from self._error

    async def set_modes(self, modes: Sequence[str], timeout: float = 10.0) -> None:
        """Open and close listeners while running (Gateways added or removed by a reload)."""
        assert self.master is not None
        ps = self.master.addons.get("proxyserver")
        self.modes = list(modes)
        self.master.options.update(mode=self.modes)
        # Update the servers here rather than wait for the option change to do it: proxyserver
        # only does so once its `running` hook has run, which can come after start() returned
        # (a change right after start then never opened its listener). A second update of the
        # same modes is a no-op. Past the timeout the update goes on, unwaited (never cancelled
        # halfway).
        update = asyncio.ensure_future(
            ps.servers.update([mode_specs.ProxyMode.parse(m) for m in self.modes])
        )
        self._updates.add(update)
        update.add_done_callback(self._updates.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(update), timeout * 0.8)
        self.bound = {
            s.mode.full_spec: (str(s.listen_addrs[0][0]), int(s.listen_addrs[0][1]))
            for s in ps.servers
            if s.is_running
        }

    async def close(self) -> None:
        """On the loop: close listeners, cancel client connections, then stop the Master."""
        if self.master is None:
            return
        ps = self.master.addons.get("proxyserver")
        await ps.servers.update([])
        for handler in list(ps.connections.values()):
            for io in list(handler.transports.values()):
                if io.handler is not None:
                    io.handler.cancel("shutdown")
        for _ in range(500):  # bounded: 5 s
            if not ps.connections:
                break
            await asyncio.sleep(0.01)
        self.master.shutdown()

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop is None or self._stopped.is_set():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.close(), self.loop).result(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- talking to the loop from another thread ---------------------------------------------

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the proxy loop and wait for its result (atomic with respect to flows)."""

        async def wrapper() -> T:
            return fn()

        return self.run_coro(wrapper(), timeout)

    def run_coro(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        if self.loop is None or self._stopped.is_set():
            coro.close()
            raise ProxyError("the proxy is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)
