"""The relay on real socket pairs: half-close, bounded buffers, latency pipelining, cuts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable

import pytest

from chaoskit.faults.tcp.plan import NO_TCP_FAULT, ConnectionPlan, DirectionPlan
from chaoskit.proxy.tcp_relay import Counts, End, relay

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def pair(rcvbuf: int | None = None) -> tuple[Streams, Streams]:
    """Two connected stream ends: (the proxy's side, the peer's side)."""
    a, b = socket.socketpair()
    if rcvbuf is not None:
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
    return await asyncio.open_connection(sock=a), await asyncio.open_connection(sock=b)


def run(
    test: Callable[[Streams, Streams, asyncio.Task[End], Counts], Awaitable[None]],
    plan: ConnectionPlan = NO_TCP_FAULT,
    rcvbuf: int | None = None,
    **limits: float,
) -> None:
    """Relay between a client pair and an upstream pair; ``test`` drives the peers."""

    async def main() -> None:
        proxy_client, client = await pair(rcvbuf)
        proxy_upstream, upstream = await pair(rcvbuf)
        counts = Counts()
        task = asyncio.ensure_future(
            relay(proxy_client, proxy_upstream, plan, counts, now=time.monotonic, **limits)
        )
        try:
            await asyncio.wait_for(test(client, upstream, task, counts), 10)
        finally:
            task.cancel()
            await asyncio.wait({task})
            ends = (client, upstream, proxy_client, proxy_upstream)
            for _, w in ends:
                w.close()
            for _, w in ends:
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    asyncio.run(main())


def test_a_half_close_is_passed_on_and_the_answer_still_comes_back() -> None:
    async def test(client: Streams, upstream: Streams, task: asyncio.Task[End], c: Counts) -> None:
        client[1].write(b"request")
        client[1].write_eof()
        assert await upstream[0].read() == b"request"  # ... then EOF: the FIN arrived
        upstream[1].write(b"answer")
        upstream[1].write_eof()
        assert await client[0].read() == b"answer"
        assert await task is End.EOF
        assert (c.from_client, c.to_client, c.to_upstream, c.from_upstream) == (7, 6, 7, 6)

    run(test)


@pytest.mark.parametrize("latency", [0.0, 0.05])
def test_a_slow_reader_holds_the_sender_back(latency: float) -> None:
    """The client reads nothing: the relay stops reading the upstream once the client side's
    buffers are full (with latency, once its queue of delayed chunks is full too), so what it
    took from the upstream stays bounded."""
    sent = 8 * 1024 * 1024

    async def test(client: Streams, upstream: Streams, task: asyncio.Task[End], c: Counts) -> None:
        writer = upstream[1]
        writer.write(b"x" * sent)
        with contextlib.suppress(TimeoutError):  # the upstream is held back, as it should be
            await asyncio.wait_for(writer.drain(), 0.5)
        assert c.from_upstream < 2 * 1024 * 1024
        assert await client[0].readexactly(1000) == b"x" * 1000  # it still flows when read

    run(test, ConnectionPlan(downstream=DirectionPlan(latency=latency)), rcvbuf=64 * 1024)


def test_latency_is_a_long_path_not_a_slow_sender() -> None:
    plan = ConnectionPlan(upstream=DirectionPlan(latency=0.2))

    async def test(client: Streams, upstream: Streams, task: asyncio.Task[End], c: Counts) -> None:
        start = time.monotonic()
        client[1].write(b"a")
        await asyncio.sleep(0.1)
        client[1].write(b"b")
        assert await upstream[0].readexactly(1) == b"a"
        first = time.monotonic() - start
        assert await upstream[0].readexactly(1) == b"b"
        second = time.monotonic() - start
        assert first >= 0.2 and second >= 0.3
        assert second < 0.39  # pipelined: b waited 0.2 s, not 0.2 s after a was written

    run(test, plan)


def test_limit_data_closes_cleanly_after_n_bytes_of_its_direction() -> None:
    plan = ConnectionPlan(downstream=DirectionPlan(limit_bytes=5))

    async def test(client: Streams, upstream: Streams, task: asyncio.Task[End], c: Counts) -> None:
        upstream[1].write(b"0123456789")
        assert await client[0].read() == b"01234"
        assert await task is End.LIMIT
        assert await upstream[0].read() == b""  # the upstream's side is closed too

    run(test, plan)


def test_a_blackhole_relays_nothing_and_closes_on_its_timer() -> None:
    plan = ConnectionPlan(blackhole=True, close_after=0.1)

    async def test(client: Streams, upstream: Streams, task: asyncio.Task[End], c: Counts) -> None:
        client[1].write(b"ping")
        upstream[1].write(b"pong")
        assert await client[0].read() == b""
        assert await upstream[0].read() == b""
        assert await task is End.CLOSED
        assert (c.from_client, c.to_upstream, c.from_upstream, c.to_client) == (4, 0, 4, 0)

    run(test, plan)


def test_the_idle_timeout_counts_from_the_last_byte_either_way() -> None:
    async def test(client: Streams, upstream: Streams, task: asyncio.Task[End], c: Counts) -> None:
        start = time.monotonic()
        for _ in range(3):  # traffic every 0.1 s keeps a 0.2 s idle timeout from firing
            await asyncio.sleep(0.1)
            client[1].write(b".")
            assert await upstream[0].readexactly(1) == b"."
        assert not task.done()
        assert await task is End.IDLE
        assert time.monotonic() - start >= 0.5
        assert await client[0].read() == b""  # closed cleanly

    run(test, idle_timeout=0.2)


def test_max_duration_closes_a_busy_connection() -> None:
    async def test(client: Streams, upstream: Streams, task: asyncio.Task[End], c: Counts) -> None:
        start = time.monotonic()
        while not task.done():
            client[1].write(b".")
            await asyncio.sleep(0.02)
        assert task.result() is End.MAX_DURATION
        assert 0.3 <= time.monotonic() - start < 1.0

    run(test, max_duration=0.3)
