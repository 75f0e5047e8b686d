"""The streaming load generator, run as its own process: ``python -m bench.stream_client < spec``.

Like :mod:`bench.loadgen` (one JSON spec on standard input, one JSON result on standard
output, run pinned to the client CPU), for the two measurements of :mod:`bench.streaming`:

``sse``       every ``1/rate`` s, one Server-Sent Events request to each target in turn (the
              first target rotating), each on an idle keep-alive connection of that target
              (a new one when none is idle). The time to first byte is from sending the
              request to having the whole first event; the requests of one tick are timed
              one after another, never overlapping, while the rest of each stream (its later
              events and its last chunk) is read in the background, after which its connection
              is idle again. ``warmup`` requests per target come first and are not counted;
              ``events`` (target name → count) is how many events each stream must have.
``download``  one ``GET`` of ``bytes`` on a new connection, read to its end into one reused
              buffer; seconds from the request to the last byte, and MB/s (MiB, 2**20).

Both framings a proxy may choose are read: ``content-length`` and chunked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from typing import Any

from bench.loadgen import Target, summary

_CRLF2 = b"\r\n\r\n"


class Framing:
    """Where a response body ends: ``content-length`` bytes, or chunked (the chunk sizes are
    read as the data goes by; only the payload is counted)."""

    def __init__(self, head: bytes) -> None:
        lower = head.lower()
        self.status = int(head[9:12])
        self.chunked = b"\r\ntransfer-encoding: chunked" in lower
        self.length: int | None = None
        marker = lower.find(b"\r\ncontent-length:")
        if marker >= 0 and not self.chunked:
            end = lower.find(b"\r\n", marker + 2)
            self.length = int(lower[marker + 17 : end if end >= 0 else len(lower)])
        self.payload = 0
        self.done = self.length == 0
        #: chunked: data of the current chunk still to come (0: a size line is next), bytes of
        #: its closing CRLF still to skip, and a size line split between two reads
        self._left = 0
        self._skip = 0
        self._pending = b""

    def feed(self, data: bytes | memoryview, keep: bool = True) -> bytes:
        """Account for ``data`` (wire bytes). Returns the payload in it for chunked bodies
        when ``keep`` (a body of known length is ``data`` itself: ``b""``, nothing copied)."""
        if not self.chunked:
            self.payload += len(data)
            if self.length is not None and self.payload >= self.length:
                self.done = True
            return b""
        buf = self._pending + bytes(data) if self._pending else data
        self._pending = b""
        out = bytearray()
        i = 0
        while i < len(buf) and not self.done:
            if self._skip:  # the CRLF after a chunk's data
                take = min(self._skip, len(buf) - i)
                self._skip -= take
                i += take
            elif self._left == 0:  # a chunk-size line
                end = bytes(buf[i : i + 64]).find(b"\r\n")
                if end < 0:
                    self._pending = bytes(buf[i:])
                    break
                size = int(bytes(buf[i : i + end]).split(b";")[0], 16)
                i += end + 2
                if size == 0:
                    self.done = True  # the trailer's empty line follows, read or not
                    break
                self._left = size
            else:
                take = min(self._left, len(buf) - i)
                if keep:
                    out += buf[i : i + take]
                self.payload += take
                self._left -= take
                i += take
                if self._left == 0:
                    self._skip = 2
        return bytes(out)


def _payload(framing: Framing, data: bytes) -> bytes:
    """The payload in ``data``, whichever the framing."""
    decoded = framing.feed(data)
    return decoded if framing.chunked else data


class SseConn:
    """One keep-alive connection of an SSE target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.target.host, self.target.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None


class SseStream:
    """One request on a connection: :meth:`first_event` (timed), then :meth:`rest`."""

    def __init__(self, conn: SseConn) -> None:
        self.conn = conn
        self.framing: Framing | None = None
        self.text = b""

    async def first_event(self) -> float:
        """Send the request; seconds until the whole first event arrived."""
        conn = self.conn
        assert conn.reader is not None and conn.writer is not None
        t0 = time.perf_counter()
        conn.writer.write(conn.target.request)
        head = await conn.reader.readuntil(_CRLF2)
        framing = self.framing = Framing(head)
        while b"\n\n" not in self.text:
            data = await conn.reader.read(65536)
            if not data:
                raise ConnectionError("the stream ended before its first event")
            self.text += _payload(framing, data)
            if framing.done and b"\n\n" not in self.text:
                raise ConnectionError("the stream ended before its first event")
        return time.perf_counter() - t0

    async def rest(self) -> int:
        """Read the stream to its end; how many events it had."""
        framing, reader = self.framing, self.conn.reader
        assert framing is not None and reader is not None
        while not framing.done:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the stream was cut off")
            self.text += _payload(framing, data)
        return self.text.count(b"\n\n")


async def sse(spec: dict[str, Any]) -> dict[str, Any]:
    targets = [Target(t) for t in spec["targets"]]
    rate = float(spec.get("rate", 10))
    count = int(spec["count"])
    warmup = int(spec.get("warmup", 10))
    #: events each target's streams must have (name → count)
    expect: dict[str, int] = spec.get("events", {})
    timeout = float(spec.get("timeout", 10))
    loop = asyncio.get_running_loop()
    idle: dict[str, list[SseConn]] = {t.name: [] for t in targets}
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    errors: dict[str, list[str]] = {t.name: [] for t in targets}
    events: dict[str, dict[str, int]] = {t.name: {} for t in targets}
    opened: dict[str, int] = {t.name: 0 for t in targets}
    background: set[asyncio.Task[None]] = set()

    async def finish(stream: SseStream, counted: bool) -> None:
        name = stream.conn.target.name
        try:
            n = await asyncio.wait_for(stream.rest(), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            errors[name].append(f"rest: {type(e).__name__}: {e}")
            stream.conn.close()
            return
        if counted:
            events[name][str(n)] = events[name].get(str(n), 0) + 1
        if name in expect and n != expect[name]:
            errors[name].append(f"{n} events, not {expect[name]}")
        idle[name].append(stream.conn)

    t0 = loop.time()
    for i in range(warmup + count):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        k = i % len(targets)
        for target in targets[k:] + targets[:k]:
            name = target.name
            conn = idle[name].pop() if idle[name] else SseConn(target)
            stream = SseStream(conn)
            try:
                if conn.writer is None:
                    await asyncio.wait_for(conn.open(), timeout)
                    opened[name] += 1
                seconds = await asyncio.wait_for(stream.first_event(), timeout)
                if stream.framing is not None and stream.framing.status != 200:
                    raise ValueError(f"status {stream.framing.status}")
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
                errors[name].append(f"first event: {type(e).__name__}: {e}")
                conn.close()
                continue
            if i >= warmup:
                samples[name].append(seconds * 1000)
            task = asyncio.ensure_future(finish(stream, i >= warmup))
            background.add(task)
            task.add_done_callback(background.discard)
    if background:
        await asyncio.wait(list(background), timeout=timeout + 5)
    for conns in idle.values():
        for c in conns:
            c.close()
    return {
        "rate_per_target": rate,
        "warmup_per_target": warmup,
        "targets": {
            name: {
                "requests": len(values),
                "errors": len(errors[name]),
                "error_kinds": sorted(set(errors[name]))[:5],
                "events_per_stream": events[name],
                "connections": opened[name],
                "ttfb_ms": summary(values),
                "samples_ms": [round(v, 3) for v in values],
            }
            for name, values in samples.items()
        },
    }


def download(spec: dict[str, Any]) -> dict[str, Any]:
    """One large download with a blocking socket (nothing else runs in this process)."""
    (target,) = (Target(t) for t in spec["targets"])
    size = int(spec["bytes"])
    deadline = time.monotonic() + float(spec.get("timeout", 300))
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with socket.create_connection((target.host, target.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        sock.sendall(target.request)
        head = b""
        while _CRLF2 not in head:
            n = sock.recv_into(view)
            if not n:
                raise ConnectionError("closed before the response head")
            head += bytes(view[:n])
        head, _, rest = head.partition(_CRLF2)
        t_head = time.perf_counter()
        framing = Framing(head + _CRLF2)
        framing.feed(rest, keep=False)
        while not framing.done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"download not done after {spec.get('timeout', 300)} s")
            n = sock.recv_into(view)
            if not n:
                break  # cut off: reported as fewer bytes than asked
            framing.feed(view[:n], keep=False)
        seconds = time.perf_counter() - t0
    return {
        "status": framing.status,
        "framing": "chunked" if framing.chunked else "content-length",
        "bytes": framing.payload,
        "complete": framing.done and framing.payload == size,
        "head_ms": round((t_head - t0) * 1000, 3),
        "seconds": round(seconds, 4),
        "mb_per_s": round(framing.payload / 2**20 / seconds, 1) if seconds > 0 else None,
    }


def main() -> int:
    spec = json.loads(sys.stdin.read())
    if spec["mode"] == "sse":
        result = asyncio.run(sse(spec))
    elif spec["mode"] == "download":
        result = download(spec)
    else:
        print(f"unknown mode {spec['mode']!r}", file=sys.stderr)
        return 2
    result["mode"] = spec["mode"]
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
