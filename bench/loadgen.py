"""The Python load generator, run as a separate process: ``python -m bench.loadgen < spec.json``.

It is the fallback for ``wrk`` (throughput), and the tool for everything wrk cannot do: fixed
request rates, interleaved light-load latency, bursts of new connections, and ordered status
sequences. Plain asyncio streams speaking HTTP/1.1 keep-alive, no third-party client: on one
core it issues several thousand requests per second, far more than a mitmproxy-based proxy
serves, so it does not limit what it measures through a proxy (direct-to-origin figures from
it are a reference only, bounded by the generator itself).

The spec is one JSON object with ``mode`` and ``targets`` (each ``{"name", "port",
"target", "host", "headers"}``: ``target`` is the request-target, ``/`` for an origin or a
reverse proxy, ``http://web/`` for a forward proxy). Modes:

``closed``     ``conns`` connections send back-to-back for ``duration`` s after ``warmup`` s
               (or until ``max_requests``); throughput and latency.
``rate``       one request every ``1/rate`` s, each on an idle connection of a pool of at most
               ``conns`` (open loop); latency from the scheduled time and from the send time.
               ``preopen_s`` × rate connections are opened first, and the answers of the first
               ``warmup`` s at the full rate are not counted.
``interleave`` every ``1/rate`` s, one request to each target in turn, each on its own
               connection (light-load latency of several targets side by side).
``burst``      ``conns`` new connections at once, one request each; total wall time.
``sequence``   ``count`` requests one after another on one connection; the ordered statuses.
``upload``     ``conns`` new connections at once, each sending one ``POST`` with a body of
               ``body_bytes`` (``content-length``); statuses and wall time. A server may answer
               before the body is sent (a refusal): the rest is still sent, then the answer read.

The result is one JSON object on standard output. Latencies are in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import resource
import socket
import sys
import time
from typing import Any

#: Headers a response may end with; everything we talk to answers with content-length or chunks.
_CRLF2 = b"\r\n\r\n"


class Target:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.name: str = spec.get("name", "target")
        self.host: str = spec.get("address", "127.0.0.1")
        self.port: int = int(spec["port"])
        target: str = spec.get("target", "/")
        host_header: str = spec.get("host", f"127.0.0.1:{self.port}")
        lines = [f"{spec.get('method', 'GET')} {target} HTTP/1.1", f"Host: {host_header}"]
        lines += [f"{k}: {v}" for k, v in spec.get("headers", {}).items()]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()


class Conn:
    """One keep-alive HTTP/1.1 connection; reconnects after the server closed it."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.target.host, self.target.port, limit=2**20
        )
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1

    async def request(self) -> int:
        """Send the target's request and read the whole response; returns the status."""
        return await asyncio.wait_for(self._request(), self.timeout)

    async def _request(self) -> int:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.target.request)
        try:
            head = await self.reader.readuntil(_CRLF2)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        status = int(head[9:12])
        lower = head.lower()
        close = b"\r\nconnection: close" in lower
        marker = lower.find(b"\r\ncontent-length:")
        if marker >= 0:
            end = lower.find(b"\r\n", marker + 2)
            length = int(lower[marker + 17 : end])
            if length:
                await self.reader.readexactly(length)
        elif b"\r\ntransfer-encoding: chunked" in lower:
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:  # no length: the body runs to the end of the connection
            await self.reader.read()
            close = True
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _record_status(statuses: dict[str, int], status: int) -> None:
    key = str(status)
    statuses[key] = statuses.get(key, 0) + 1


async def closed(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec["targets"][0])
    conns = int(spec.get("conns", 50))
    warmup = float(spec.get("warmup", 0))
    duration = float(spec.get("duration", 5))
    max_requests = spec.get("max_requests")
    timeout = float(spec.get("timeout", 10))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    done = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + duration

    async def worker() -> None:
        nonlocal errors, done
        conn = Conn(target, timeout)
        while True:
            t0 = loop.time()
            if t0 >= end or (max_requests is not None and done >= max_requests):
                break
            try:
                status = await conn.request()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                if t0 >= start:
                    errors += 1
                conn.close()
                continue
            t1 = loop.time()
            if t0 >= start:
                latencies.append((t1 - t0) * 1000)
                _record_status(statuses, status)
                done += 1
        conn.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    elapsed = min(loop.time(), end) - start
    return {
        "requests": done,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rps": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "statuses": statuses,
        "latency_ms": summary(latencies),
    }


async def rate(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec["targets"][0])
    per_second = float(spec["rate"])
    duration = float(spec.get("duration", 5))
    count = int(spec.get("count", per_second * duration))
    max_conns = int(spec.get("conns", 64))
    timeout = float(spec.get("timeout", 10))
    loop = asyncio.get_running_loop()
    idle: list[Conn] = []
    opened = 0
    available = asyncio.Condition()
    scheduled: list[float] = []
    service: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    late = 0

    async def acquire() -> Conn:
        nonlocal opened
        async with available:
            while not idle and opened >= max_conns:
                await available.wait()
            if idle:
                return idle.pop()
            opened += 1
            return Conn(target, timeout)

    async def release(conn: Conn) -> None:
        async with available:
            idle.append(conn)
            available.notify()

    async def one(at: float, counted: bool) -> None:
        nonlocal errors, late
        conn = await acquire()
        t_send = loop.time()
        if counted and t_send - at > 0.001:
            late += 1
        try:
            status = await conn.request()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            errors += counted
            conn.close()
        else:
            t_end = loop.time()
            if counted:
                scheduled.append((t_end - at) * 1000)
                service.append((t_end - t_send) * 1000)
                _record_status(statuses, status)
        await release(conn)

    # Open connections before the clock starts, enough for answers taking up to
    # ``preopen_s`` at this rate, so connection set-up (which costs a proxy about as much CPU
    # as a request) is not measured, nor the backlog a burst of connects leaves behind.
    preopen = min(max_conns, max(4, math.ceil(per_second * float(spec.get("preopen_s", 0.2)))))

    async def warm_one() -> None:
        c = Conn(target, timeout)
        with contextlib.suppress(Exception):
            await c.request()
        idle.append(c)

    for first in range(0, preopen, 64):  # at most 64 connects at a time
        await asyncio.gather(*(warm_one() for _ in range(min(64, preopen - first))))
    opened = len(idle)
    # Then ``warmup`` seconds at the full rate whose answers are not counted.
    warmup_count = int(per_second * float(spec.get("warmup", 0)))
    tasks = []
    t0 = loop.time() + 0.05
    for i in range(warmup_count + count):
        at = t0 + i / per_second
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(at, counted=i >= warmup_count)))
    await asyncio.gather(*tasks)
    window = count / per_second
    drain = loop.time() - t0 - window - warmup_count / per_second
    for c in idle:
        c.close()
    return {
        "requests": len(service),
        "errors": errors,
        "offered_rps": per_second,
        # completed requests per second of the sending window, and how long the last answers
        # took to arrive after it closed (a proxy that keeps up drains in about one latency)
        "achieved_rps": round(len(service) / window, 1) if window > 0 else 0.0,
        "drain_s": round(drain, 3),
        "connections": opened,
        "late_sends": late,
        "statuses": statuses,
        "latency_ms": summary(scheduled),
        "service_latency_ms": summary(service),
    }


async def interleave(spec: dict[str, Any]) -> dict[str, Any]:
    targets = [Target(t) for t in spec["targets"]]
    per_second = float(spec.get("rate", 10))
    count = int(spec["count"])
    timeout = float(spec.get("timeout", 10))
    loop = asyncio.get_running_loop()
    conns = [Conn(t, timeout) for t in targets]
    samples: dict[str, list[float]] = {t.name: [] for t in targets}
    statuses: dict[str, dict[str, int]] = {t.name: {} for t in targets}
    errors: dict[str, int] = {t.name: 0 for t in targets}
    for c in conns:  # connect and warm each path first
        for _ in range(3):
            with contextlib.suppress(Exception):
                await c.request()
    t0 = loop.time()
    for i in range(count):
        at = t0 + i / per_second
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        order = conns[i % len(conns) :] + conns[: i % len(conns)]  # rotate who goes first
        for c in order:
            t_send = loop.time()
            try:
                status = await c.request()
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                errors[c.target.name] += 1
                c.close()
                continue
            samples[c.target.name].append((loop.time() - t_send) * 1000)
            _record_status(statuses[c.target.name], status)
    for c in conns:
        c.close()
    return {
        "rate_per_target": per_second,
        "targets": {
            name: {
                "requests": len(values),
                "errors": errors[name],
                "statuses": statuses[name],
                "latency_ms": summary(values),
                "samples_ms": [round(v, 3) for v in values],
            }
            for name, values in samples.items()
        },
    }


async def burst(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec["targets"][0])
    n = int(spec.get("conns", 500))
    timeout = float(spec.get("timeout", 30))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    gate = asyncio.Event()

    async def one() -> None:
        conn = Conn(target, timeout)
        await gate.wait()
        t_start = loop.time()
        try:
            status = await conn.request()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            errors.append(type(e).__name__)
        else:
            latencies.append((loop.time() - t_start) * 1000)
            _record_status(statuses, status)
        finally:
            conn.close()

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(0)
    t0 = loop.time()
    gate.set()
    await asyncio.gather(*tasks)
    wall = loop.time() - t0
    return {
        "connections": n,
        "wall_s": round(wall, 3),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "statuses": statuses,
        "latency_ms": summary(latencies),
    }


async def sequence(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec["targets"][0])
    count = int(spec["count"])
    timeout = float(spec.get("timeout", 10))
    conn = Conn(target, timeout)
    out: list[int] = []
    t0 = time.monotonic()
    for _ in range(count):
        try:
            out.append(await conn.request())
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            out.append(0)
            conn.close()
    conn.close()
    return {
        "requests": count,
        "seconds": round(time.monotonic() - t0, 3),
        "connections": conn.connects,
        "statuses": out,
    }


async def upload(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec["targets"][0])
    n = int(spec.get("conns", 20))
    size = int(spec["body_bytes"])
    timeout = float(spec.get("timeout", 120))
    head = target.request.replace(b"GET ", b"POST ", 1)[:-2]
    head += b"content-length: %d\r\n\r\n" % size
    block = b"u" * min(size, 2**20)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    gate = asyncio.Event()

    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        for sent in range(0, size, len(block)):
            writer.write(block[: min(len(block), size - sent)])
            await writer.drain()

    async def one() -> None:
        await gate.wait()
        t_start = loop.time()
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    target.host, target.port, limit=2**20
                )
                with contextlib.suppress(ConnectionError):  # answered early, then closed
                    await send(writer)
                response = await reader.readuntil(_CRLF2)
                status = int(response[9:12])
                marker = response.lower().find(b"\r\ncontent-length:")
                if marker >= 0:
                    end = response.find(b"\r\n", marker + 2)
                    await reader.readexactly(int(response[marker + 17 : end]))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            errors.append(type(e).__name__)
        else:
            latencies.append((loop.time() - t_start) * 1000)
            _record_status(statuses, status)
        finally:
            if writer is not None:
                writer.close()

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(0)
    t0 = loop.time()
    gate.set()
    await asyncio.gather(*tasks)
    return {
        "connections": n,
        "body_bytes": size,
        "wall_s": round(loop.time() - t0, 3),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "statuses": statuses,
        "latency_ms": summary(latencies),
    }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0–100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def summary(values: list[float]) -> dict[str, float | int]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "min": round(v[0], 3),
        "p50": round(percentile(v, 50), 3),
        "p90": round(percentile(v, 90), 3),
        "p99": round(percentile(v, 99), 3),
        "max": round(v[-1], 3),
        "mean": round(sum(v) / len(v), 3),
    }


MODES = {
    "closed": closed,
    "rate": rate,
    "interleave": interleave,
    "burst": burst,
    "sequence": sequence,
    "upload": upload,
}


def main() -> int:
    spec = json.loads(sys.stdin.read())
    _raise_fd_limit()
    result = asyncio.run(MODES[spec["mode"]](spec))
    result["mode"] = spec["mode"]
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
