"""The gRPC load generator of :mod:`bench.grpc`, run as its own process:
``python -m bench.grpc_client < spec``.

Like :mod:`bench.stream_client` (one JSON spec on standard input, one JSON result on standard
output, run pinned to the client CPU). Every target is one grpcio asyncio channel, made once:
``{"name", "address", "proxy", "ca"}``, where ``proxy`` (an ``http://`` URL or ``null``)
becomes the channel's ``grpc.http_proxy`` option — grpcio then opens a ``CONNECT`` tunnel and
speaks HTTP/2 inside it: with prior knowledge, or, when ``ca`` names a PEM file, over TLS (ALPN
``h2``) whose certificate must chain to that file (never unverified). Each call is
``/bench.Echo/Say`` with ``payload`` bytes; ``warmup`` calls per target come first and are not
counted.

``latency``     every ``1/rate`` s, one call to each target in turn (the first target
                rotating), the calls of a tick one after another, never overlapping; ``count``
                ticks. Milliseconds from the call to its answer.
``throughput``  ``rounds`` rounds; in each, every target in turn (the first rotating) gets
                ``calls`` calls from ``concurrency`` tasks, each starting its next call when
                its last one is answered (a closed loop). Answered calls per second of each
                round.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc

from bench.grpc_origin import METHOD
from bench.loadgen import summary

Call = Callable[[], Coroutine[Any, Any, str | None]]


def _channel(target: dict[str, Any]) -> grpc.aio.Channel:
    options: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]
    if target.get("proxy"):
        options = [("grpc.http_proxy", target["proxy"]), ("grpc.enable_http_proxy", 1)]
    if not target.get("ca"):
        return grpc.aio.insecure_channel(target["address"], options=options)
    # TLS inside the tunnel, verified against this CA only: the proxy's own when one is in the
    # path (it intercepts), the origin's self-signed certificate when not.
    trust = grpc.ssl_channel_credentials(root_certificates=Path(target["ca"]).read_bytes())
    return grpc.aio.secure_channel(target["address"], trust, options=options)


def _caller(channel: grpc.aio.Channel, payload: bytes, timeout: float) -> Call:
    """One call: ``None`` when it was answered with the payload, else what went wrong."""
    say = channel.unary_unary(METHOD)

    async def call() -> str | None:
        try:
            answer = await say(payload, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            return e.code().name
        return None if answer == payload else "WRONG_ANSWER"

    return call


def _count(errors: dict[str, int], error: str | None) -> None:
    if error is not None:
        errors[error] = errors.get(error, 0) + 1


async def latency(spec: dict[str, Any], calls: dict[str, Call]) -> dict[str, Any]:
    names = list(calls)
    samples: dict[str, list[float]] = {n: [] for n in names}
    errors: dict[str, dict[str, int]] = {n: {} for n in names}
    period = 1 / spec["rate"]
    start = time.perf_counter()
    for i in range(spec["count"]):
        wait = start + i * period - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        k = i % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            error = await calls[name]()
            if error is None:
                samples[name].append((time.perf_counter() - t0) * 1000)
            _count(errors[name], error)
    return {
        n: {"latency_ms": summary(samples[n]), "samples_ms": samples[n], "errors": errors[n]}
        for n in names
    }


async def closed_loop(call: Call, total: int, concurrency: int) -> dict[str, Any]:
    left = total
    errors: dict[str, int] = {}

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            _count(errors, await call())

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    answered = total - sum(errors.values())  # a failed call is not throughput
    return {"calls": total, "answered": answered, "seconds": round(seconds, 3),
            "rps": round(answered / seconds, 1), "errors": errors}  # fmt: skip


async def throughput(spec: dict[str, Any], calls: dict[str, Call]) -> dict[str, Any]:
    names = list(calls)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(spec["rounds"]):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            res = await closed_loop(calls[name], spec["calls"], spec["concurrency"])
            runs[name].append({"round": r, **res})
    return {n: {"runs": runs[n]} for n in names}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    payload = b"x" * spec.get("payload", 64)
    channels = {t["name"]: _channel(t) for t in spec["targets"]}
    try:
        calls = {n: _caller(ch, payload, spec.get("timeout", 10)) for n, ch in channels.items()}
        warmup: dict[str, dict[str, int]] = {}
        for name, call in calls.items():
            warmup[name] = {}
            for _ in range(spec.get("warmup", 0)):
                _count(warmup[name], await call())
        measure = latency if spec["mode"] == "latency" else throughput
        return {"targets": await measure(spec, calls), "warmup_errors": warmup}
    finally:
        await asyncio.gather(*(ch.close() for ch in channels.values()))


def main() -> int:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(run(spec))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
