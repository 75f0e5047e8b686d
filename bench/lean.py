"""mitmproxy's own cost on this machine: a lean Master with no addon, as a reverse proxy.

``python -m bench.lean TARGET_URL PORT`` builds ``Master`` with only the five addons
``chaoskit proxy`` also uses (core, proxyserver, next_layer, tlsconfig, errorcheck — chaoskit's
start-up check in place of mitmproxy's, which costs nothing per request; see
``chaoskit.proxy.runtime.make_master``) with mitmproxy's stock hook dispatch, and lets mitmproxy
forward natively: what mitmproxy's machinery alone costs per request. chaoskit's runtime also hosts
these five, but dispatches hooks through a table (``chaoskit.proxy.dispatch``) and forwards
through a pooled aiohttp session, which together save about as much as chaoskit's own work
costs.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from mitmproxy import options
from mitmproxy.addons import core, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master


async def main(target: str, port: int, confdir: str) -> None:
    opts = options.Options(
        mode=[f"reverse:{target}"], listen_host="127.0.0.1", listen_port=port, confdir=confdir
    )
    master = Master(opts)
    addons: list[Any] = [
        core.Core(), proxyserver.Proxyserver(),  # type: ignore[no-untyped-call]
        next_layer.NextLayer(), tlsconfig.TlsConfig(), errorcheck.ErrorCheck(),
    ]  # fmt: skip
    add: Any = master.addons.add  # mitmproxy's API is only partly annotated
    add(*addons)
    update: Any = opts.update
    update(connection_strategy="lazy")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
