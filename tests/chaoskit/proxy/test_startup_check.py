"""A start is stopped by this proxy's own errors, not by records that other code logs meanwhile
(chaoskit.proxy.startup_check), through a real lean Master on a loopback socket."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import ctx

from chaoskit.errors import ProxyError
from chaoskit.proxy.runtime import ProxyRuntime
from chaoskit.proxy.startup_check import StartupCheck, _Collector


class LogsWhileStarting:
    """Logs ``records`` (logger name, from another thread?) from mitmproxy's ``running`` hook,
    the last step of a start, and notes the listening port."""

    def __init__(self, *records: tuple[str, bool]) -> None:
        self.records = records
        self.port = 0

    def running(self) -> None:
        server, *_ = ctx.master.addons.get("proxyserver").servers
        self.port = server.listen_addrs[0][1]
        for name, elsewhere in self.records:
            log = logging.getLogger(name)
            if elsewhere:
                other = threading.Thread(target=log.error, args=(f"stray from {name}",))
                other.start()
                other.join()
            else:
                log.error("stray from %s", name)


class FailsToStart(LogsWhileStarting):
    def running(self) -> None:
        super().running()
        raise RuntimeError("cannot load the mesh")


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[list[ProxyRuntime]]:
    made: list[ProxyRuntime] = []
    yield made
    for runtime in made:
        runtime.stop()


def start(runtimes: list[ProxyRuntime], tmp_path: Path, *addons: Any) -> ProxyRuntime:
    runtime = ProxyRuntime(list(addons), ["regular@127.0.0.1:0"], confdir=str(tmp_path))
    runtimes.append(runtime)
    runtime.start()
    return runtime


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_records_of_other_code_during_the_start_do_not_stop_it(runtimes, tmp_path) -> None:
    # asyncio reporting a session collected late, on the proxy's thread; chaoskit and mitmproxy
    # loggers used by another thread (a test's own fixtures, another proxy's leftovers)
    addon = LogsWhileStarting(("asyncio", False), ("chaoskit.testing", True), ("mitmproxy", True))
    runtime = start(runtimes, tmp_path, addon)
    assert runtime.bound and not refused(addon.port)
    assert runtime.master is not None
    # let the proxy be done with the probe's connection before the fixture stops it (else a
    # busy machine can stop the loop with that socket accepted and never closed)
    connections = runtime.master.addons.get("proxyserver").connections

    async def drained() -> None:
        for _ in range(500):  # bounded: 5 s
            if not connections:
                return
            await asyncio.sleep(0.01)

    runtime.run_coro(drained())
    check = runtime.master.addons.get("errorcheck")
    assert isinstance(check, StartupCheck) and check.started and check.records == []


def test_an_error_of_the_proxy_stops_the_start_says_why_and_closes_the_listener(
    runtimes, tmp_path
) -> None:
    addon = FailsToStart()
    with pytest.raises(ProxyError, match=r"failed to start: .*cannot load the mesh"):
        start(runtimes, tmp_path, addon)
    assert addon.port and refused(addon.port)
    # the failed start took its handler off the root logger
    assert not any(isinstance(h, _Collector) for h in logging.getLogger().handlers)
    # and the next proxy starts
    assert start(runtimes, tmp_path, LogsWhileStarting()).bound


def test_a_new_check_replaces_the_handler_of_a_master_never_run() -> None:
    def collectors() -> int:
        return sum(isinstance(h, _Collector) for h in logging.getLogger().handlers)

    before = collectors()
    unrun = StartupCheck()  # as make_master for a Master that is then never run
    assert collectors() == 1
    check = StartupCheck()
    assert collectors() == 1
    check.finish()
    assert collectors() == 0 <= before <= 1
    del unrun


def test_the_check_keeps_only_own_loggers_on_its_own_thread() -> None:
    async def main() -> None:
        check = StartupCheck()
        try:
            logging.getLogger("asyncio").error("Unclosed client session")
            logging.getLogger("mitmproxyish").error("not mitmproxy's")
            logging.getLogger("chaoskit.proxy.runtime").warning("only a warning")
            await check.shutdown_if_errored()  # nothing of its own: no raise
            logging.getLogger("mitmproxy.addons.proxyserver").error("port in use")
            with pytest.raises(ProxyError, match="error logged during start-up: port in use"):
                await check.shutdown_if_errored()
            assert not check.started
        finally:
            check.finish()
        assert [r.getMessage() for r in check.records] == ["port in use"]
        logging.getLogger("chaoskit").error("after finish")
        assert len(check.records) == 1

    asyncio.run(main())
