"""Bytes both ways between a client and an upstream, with the connection's TCP faults acted out.

Envoy's TCP proxy (envoy/source/common/tcp_proxy/tcp_proxy.cc) in asyncio streams:

- **bounded buffers**: a direction reads the next chunk only once the previous one is written
  and the other side's write buffer has drained below its high-water mark
  (``StreamWriter.drain``); meanwhile the reading side's buffer fills and asyncio stops reading
  its socket, so a slow reader slows the sender down instead of growing memory (Envoy's
  ``readDisable`` on the watermarks). With latency, at most :data:`QUEUE_CHUNKS` chunks wait.
- **half-close**: an EOF from one side is passed on as a FIN (``write_eof``) and the other
  direction keeps flowing (``half_close`` in Envoy's connections); the connection ends when both
  directions have ended.
- an error on either side (a reset, a broken pipe) ends the connection: the other side is
  closed at once.

What a :class:`~chaoskit.faults.tcp.plan.DirectionPlan` asks of a direction — latency,
bandwidth, slices, a cut after N bytes — is done here; how each connection-wide ending (reset
or close on a timer, the ``timeout`` blackhole) ends the relay is :func:`relay`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import random
import socket
import struct
from collections.abc import Awaitable, Callable

from chaoskit.faults.tcp.plan import ConnectionPlan, DirectionPlan
from chaoskit.faults.tcp.shaping import slices

#: Bytes read at once from a socket.
CHUNK = 64 * 1024
#: Chunks a delayed direction holds at most (so at most 1 MiB waits per direction).
QUEUE_CHUNKS = 16
#: A bandwidth limit is paced in writes this many per second.
PACING_HZ = 20

Sleep = Callable[[float], Awaitable[object]]


class End(enum.Enum):
    """How a direction, then the whole relay, ended."""

    #: The sender closed its side (FIN passed on).
    EOF = "eof"
    #: ``limitData``: the connection is closed cleanly.
    LIMIT = "limit"
    #: ``resetPeer``: the client's connection is reset.
    RESET = "reset"
    #: ``timeout.after``: the blackholed connection is closed cleanly.
    CLOSED = "closed"
    #: A socket error on either side.
    ERROR = "error"
    #: ``connectionPool.tcp.idleTimeout``: no byte either way for that long; closed cleanly.
    IDLE = "idle"
    #: ``connectionPool.tcp.maxConnectionDuration``: the connection is that old; closed cleanly.
    MAX_DURATION = "max-duration"


@dataclasses.dataclass(slots=True)
class Counts:
    """Bytes moved; the session turns them into the record and the stats."""

    #: Bytes read from the client (Envoy's ``%BYTES_RECEIVED%``).
    from_client: int = 0
    #: Bytes written to the client (``%BYTES_SENT%``).
    to_client: int = 0
    to_upstream: int = 0
    from_upstream: int = 0
    #: Monotonic time a byte last moved, either way (what the idle timeout measures from).
    last_active: float = 0.0


@dataclasses.dataclass(slots=True)
class _Direction:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    plan: DirectionPlan
    sleep: Sleep
    now: Callable[[], float]
    rng: random.Random
    count_read: Callable[[int], None]
    count_written: Callable[[int], None]
    moved: int = 0
    #: Monotonic time before which the bandwidth limit allows no further write.
    free_at: float = 0.0

    def take(self, chunk: bytes) -> tuple[bytes, End | None]:
        """``chunk`` as far as a cut allows, and the ending the cut asks for once written."""
        cut = self.plan.cut_at
        if cut is None:
            return chunk, None
        chunk = chunk[: max(0, cut - self.moved)]
        self.moved += len(chunk)
        if self.moved < cut:
            return chunk, None
        limit = self.plan.limit_bytes
        return chunk, End.LIMIT if limit is not None and limit <= self.moved else End.RESET

    async def write(self, chunk: bytes) -> None:
        """Write ``chunk`` on, in slices and at the allowed rate when the plan says so."""
        plan = self.plan
        if not (plan.slicer or plan.bytes_per_second):
            await self._put(chunk)
            return
        if plan.slicer is not None:
            pieces = list(slices(chunk, plan.slicer, self.rng))
        else:
            step = max(1, (plan.bytes_per_second or 1) // PACING_HZ)
            pieces = [chunk[i : i + step] for i in range(0, len(chunk), step)]
        for i, piece in enumerate(pieces):
            if plan.slicer is not None and i and plan.slicer.delay:
                await self.sleep(plan.slicer.delay)
            if plan.bytes_per_second:
                wait = self.free_at - self.now()
                if wait > 0:
                    await self.sleep(wait)
                self.free_at = max(self.free_at, self.now()) + len(piece) / plan.bytes_per_second
            await self._put(piece)

    async def _put(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            self.count_written(len(data))
            await self.writer.drain()

    async def read(self) -> bytes:
        chunk = await self.reader.read(CHUNK)
        self.count_read(len(chunk))
        return chunk

    def eof(self) -> End:
        if self.writer.can_write_eof():
            self.writer.write_eof()
        return End.EOF


async def _direct(d: _Direction) -> End:
    """A direction without latency: read, write on, repeat."""
    while True:
        chunk = await d.read()
        if not chunk:
            return d.eof()
        chunk, end = d.take(chunk)
        await d.write(chunk)
        if end is not None:
            return end


async def _delayed(d: _Direction) -> End:
    """A direction with latency: chunks are written ``latency`` after they were read, in order,
    while the next ones are read (a long path, not a slow sender). A broken connection ends
    the direction at once, not after the bytes still in the delay."""
    queue: asyncio.Queue[tuple[float, bytes, End | None]] = asyncio.Queue(QUEUE_CHUNKS)

    async def read_side() -> End | None:
        try:
            while True:
                chunk = await d.read()
                due = d.now() + d.plan.latency
                if not chunk:
                    await queue.put((due, b"", End.EOF))
                    return None
                chunk, end = d.take(chunk)
                await queue.put((due, chunk, end))
                if end is not None:
                    return None
        except (ConnectionError, OSError):
            return End.ERROR

    async def write_side() -> End:
        while True:
            due, chunk, end = await queue.get()
            wait = due - d.now()
            if wait > 0:
                await d.sleep(wait)
            await d.write(chunk)
            if end is End.EOF:
                return d.eof()
            if end is not None:
                return end

    reading = asyncio.ensure_future(read_side())
    writing = asyncio.ensure_future(write_side())
    try:
        done, _ = await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
        if writing in done:
            return writing.result()
        return reading.result() or await writing
    finally:
        reading.cancel()
        writing.cancel()
        await asyncio.wait({reading, writing})


async def _pump(d: _Direction) -> End:
    try:
        return await (_delayed(d) if d.plan.latency > 0 else _direct(d))
    except (ConnectionError, OSError):
        return End.ERROR


async def _drop(reader: asyncio.StreamReader, count: Callable[[int], None]) -> End:
    """``timeout``'s blackhole: read and drop everything until the sender closes."""
    try:
        while chunk := await reader.read(CHUNK):
            count(len(chunk))
    except (ConnectionError, OSError):
        return End.ERROR
    return End.EOF


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (``SO_LINGER`` 0): the peer's next read fails with ECONNRESET."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def close(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Close cleanly (what is buffered is sent first), without waiting long for a slow peer."""
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), timeout)


async def _timer(seconds: float, end: End, sleep: Sleep) -> End:
    await sleep(seconds)
    return end


async def _idle(counts: Counts, seconds: float, sleep: Sleep, now: Callable[[], float]) -> End:
    """Ends once no byte has moved either way for ``seconds`` (Envoy's TCP proxy idle timer,
    reset by every read and write)."""
    while (wait := counts.last_active + seconds - now()) > 0:
        await sleep(wait)
    return End.IDLE


async def relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    plan: ConnectionPlan,
    counts: Counts,
    *,
    sleep: Sleep = asyncio.sleep,
    now: Callable[[], float],
    idle_timeout: float | None = None,
    max_duration: float | None = None,
) -> End:
    """Relay until the connection ends, then close both sides (the client with a RST when the
    plan resets it). Returns how it ended: :attr:`End.EOF` when both sides closed.

    ``idle_timeout`` and ``max_duration`` (seconds, ``None``: none) close the connection cleanly
    when nothing moved for that long, or when it is that old (DestinationRule
    ``connectionPool.tcp.idleTimeout`` and ``maxConnectionDuration``, which Istio writes into
    Envoy's TCP proxy as ``idle_timeout`` and ``max_downstream_connection_duration``)."""
    (c_reader, c_writer), (u_reader, u_writer) = client, upstream

    def add(field: str) -> Callable[[int], None]:
        def inc(n: int) -> None:
            setattr(counts, field, getattr(counts, field) + n)
            counts.last_active = now()

        return inc

    if plan.reset_after == 0:  # resetPeer: {} — before a byte is relayed
        reset(c_writer)
        u_writer.close()
        return End.RESET
    rng = random.Random(plan.slicer_seed)
    named: dict[asyncio.Future[End], str] = {}

    def start(work: Awaitable[End], name: str) -> None:
        named[asyncio.ensure_future(work)] = name

    if plan.blackhole:
        start(_drop(c_reader, add("from_client")), "client")
        start(_drop(u_reader, add("from_upstream")), "upstream")
        if plan.close_after is not None:
            start(_timer(plan.close_after, End.CLOSED, sleep), "timer")
    else:
        up = _Direction(c_reader, u_writer, plan.upstream, sleep, now, rng,
                        add("from_client"), add("to_upstream"))  # fmt: skip
        down = _Direction(u_reader, c_writer, plan.downstream, sleep, now, rng,
                          add("from_upstream"), add("to_client"))  # fmt: skip
        start(_pump(up), "client")
        start(_pump(down), "upstream")
    if plan.reset_after is not None:
        start(_timer(plan.reset_after, End.RESET, sleep), "timer")
    counts.last_active = now()
    if idle_timeout is not None:
        start(_idle(counts, idle_timeout, sleep, now), "idle")
    if max_duration is not None:
        start(_timer(max_duration, End.MAX_DURATION, sleep), "age")
    ended = await _first_ending(named, blackhole=plan.blackhole)
    if ended is End.RESET:
        reset(c_writer)
        u_writer.close()
    elif ended is End.ERROR:
        c_writer.transport.abort()
        u_writer.transport.abort()
    else:
        await asyncio.gather(close(c_writer), close(u_writer))
    return ended


async def _first_ending(named: dict[asyncio.Future[End], str], *, blackhole: bool) -> End:
    """Wait until the relay is over, then cancel what still runs. Any ending but EOF ends it at
    once; EOFs end it when both directions have ended — in a blackhole, when the client has
    closed (an upstream that closes leaves the client held, as Toxiproxy's ``timeout`` does)."""
    pending = set(named)
    eofs = 0
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                end = task.result()
                if end is not End.EOF:
                    return end
                if blackhole and named[task] == "upstream":
                    continue
                eofs += 1
                if blackhole or eofs == 2:
                    return End.EOF
        return End.EOF
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
