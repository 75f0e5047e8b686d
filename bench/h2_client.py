"""``python -m bench.h2_client [--requests N] [--concurrency C,...] [--path PATH]``.

Requests per second of chaoskit's HTTP/2 upstream client (:mod:`chaoskit.proxy.http2_pool`)
against ``httpx.AsyncClient(http2=True)``, when httpx is installed, both against the same
in-process HTTP/2 test server (:class:`chaoskit.testing.http2_upstream.Http2Upstream`, h2c on
127.0.0.1). The server runs on its own thread in this process, so both clients share the
machine with it alike: the figures compare the clients, they are not a server's throughput.
A micro benchmark run by hand, not part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from chaoskit.proxy.http2_pool import Http2Pool
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.testing.http2_upstream import Http2Upstream

Request = Callable[[], Awaitable[None]]


async def measure(request: Request, total: int, concurrency: int) -> tuple[float, float]:
    """Requests per second and median latency (ms) of ``total`` requests, ``concurrency``
    at a time."""
    latencies: list[float] = []
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            await request()
            latencies.append(time.perf_counter() - t0)

    for _ in range(min(20, total)):  # warm up: connections open, code paths hot
        await request()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return total / elapsed, statistics.median(latencies) * 1000


async def chaoskit_client(up: Http2Upstream, path: str) -> tuple[Request, Callable[[], Any]]:
    pool = Http2Pool(OwnSockets())
    key = ("http", "127.0.0.1", up.port)

    async def request() -> None:
        stream = await pool.open_stream(key, 5.0)
        async with stream:
            await stream.send_headers("GET", "http", up.address, path, (), end_stream=True)
            status, _ = await stream.response_headers()
            assert status == 200, status
            while await stream.read():
                pass

    return request, pool.close


async def httpx_client(up: Http2Upstream, path: str) -> tuple[Request, Callable[[], Any]]:
    import httpx  # noqa: PLC0415 (optional: measured only when installed)

    # httpx(http2=True) upgrades only over TLS: h2c needs prior knowledge on its transport
    client = httpx.AsyncClient(
        base_url=f"http://{up.address}",
        transport=httpx.AsyncHTTPTransport(http1=False, http2=True),
    )

    async def request() -> None:
        response = await client.get(path)
        assert response.status_code == 200 and response.http_version == "HTTP/2"

    return request, client.aclose


async def main(total: int, levels: list[int], path: str) -> None:
    clients = {"chaoskit": chaoskit_client}
    if importlib.util.find_spec("httpx") is not None:
        clients["httpx"] = httpx_client
    else:
        print("httpx is not installed: chaoskit's client only (pip install 'httpx[http2]')")
    with Http2Upstream("bench") as up:
        print(f"{total} × GET {path} against {up.address} (h2c)")
        print(f"{'client':10} {'concurrency':>11} {'req/s':>9} {'p50 ms':>8}")
        for concurrency in levels:
            for name, make in clients.items():
                request, close = await make(up, path)
                try:
                    rate, p50 = await measure(request, total, concurrency)
                finally:
                    await close()
                print(f"{name:10} {concurrency:>11} {rate:>9.0f} {p50:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--path", default="/bytes/1024")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    asyncio.run(main(args.requests, levels, args.path))
