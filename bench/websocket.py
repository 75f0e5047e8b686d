"""WebSocket through chaoskit: idle sockets held, and the echo round trip the proxy adds.

    python -m bench.websocket [--sockets 1000] [--rounds 300] [--out DIR]

One run, side by side: a WebSocket echo server (:class:`chaoskit.testing.EchoServer`, in this
process) and ``chaoskit proxy`` in a process of its own (pinned apart when ``taskset`` exists,
:func:`bench.procs.placement`), with a ``websockets`` asyncio client:

1. echo round trip, one message at a time on one socket, ``--rounds`` times: directly to the
   echo server, then through the proxy; p50/p99 of each and what the proxy adds (issue #14's
   bar: p50 added ≤ 2 ms);
2. ``--sockets`` sockets opened through the proxy and held idle for a few seconds; then every
   one echoes once: how many were held and answered, the proxy's RSS and open descriptors
   (issue #14's bar: 1,000 held).

Prints one JSON object; nothing is written unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.procs import Processes, free_port, open_fds, placement, rss_mb
from bench.stats import percentile
from chaoskit.testing import EchoServer


def mesh_yaml(echo_port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: chat}}
        spec:
          hosts: [chat]
          ports: [{{number: 8080, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{{address: 127.0.0.1, ports: {{http: {echo_port}}}}}]
        """)


async def round_trips(ws: ClientConnection, rounds: int) -> list[float]:
    """Milliseconds per echo, one message in flight at a time (after a few warm-up ones)."""
    for _ in range(10):
        await ws.send("warm-up")
        await ws.recv()
    out = []
    for i in range(rounds):
        t0 = time.perf_counter()
        await ws.send(f"m{i}")
        await ws.recv()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(samples: list[float]) -> dict[str, float | None]:
    return {"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)}


async def hold(url: str, proxy: str, n: int, idle: float, pid: int) -> dict[str, Any]:
    """Open ``n`` sockets through the proxy, hold them ``idle`` seconds, then echo once on each;
    the proxy's RSS and descriptors while they are held."""
    opened: list[ClientConnection] = []
    failed = 0
    for _ in range(n):  # one at a time: the proxy's accept queue is not what is measured
        try:
            opened.append(await connect(url, proxy=proxy, open_timeout=20, ping_interval=None))
        except Exception:
            failed += 1
    await asyncio.sleep(idle)

    async def echo(ws: ClientConnection) -> bool:
        try:
            await ws.send("still there?")
            return await asyncio.wait_for(ws.recv(), 20) == "still there?"
        except Exception:
            return False

    answered = sum(await asyncio.gather(*(echo(ws) for ws in opened)))
    rss, fds = rss_mb(pid), open_fds(pid)
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return {
        "opened": len(opened), "failed_to_open": failed, "answered_after_idle": answered,
        "proxy_rss_mb_held": rss, "proxy_open_fds_held": fds,
    }  # fmt: skip


async def measure(
    args: argparse.Namespace, echo: EchoServer, port: int, pid: int
) -> dict[str, Any]:
    proxy = f"http://127.0.0.1:{port}"
    async with connect(f"ws://{echo.address}/", proxy=None, ping_interval=None) as ws:
        direct = await round_trips(ws, args.rounds)
    async with connect("ws://chat:8080/", proxy=proxy, ping_interval=None) as ws:
        through = await round_trips(ws, args.rounds)
    rss_before = rss_mb(pid)
    held = await hold("ws://chat:8080/", proxy, args.sockets, args.idle, pid)
    result: dict[str, Any] = {
        "round_trip_direct": summary(direct),
        "round_trip_chaoskit": summary(through),
        "idle_sockets": {**held, "proxy_rss_mb_before": rss_before},
    }
    d, c = result["round_trip_direct"]["p50_ms"], result["round_trip_chaoskit"]["p50_ms"]
    result["added_p50_ms"] = None if d is None or c is None else round(c - d, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds the sockets stay idle")
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and result.json")
    args = parser.parse_args(argv)
    run_dir = args.out or Path(tempfile.mkdtemp(prefix="chaoskit-bench-ws-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    place = placement()
    with EchoServer("bench-echo") as echo, Processes(run_dir, place) as procs:
        mesh = run_dir / "mesh.yaml"
        mesh.write_text(mesh_yaml(echo.port), encoding="utf-8")
        port, admin = free_port(), free_port()
        proc = procs.spawn(
            "chaoskit",
            [
                sys.executable, "-m", "chaoskit", "proxy", "-f", str(mesh), "--seed", "42",
                "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
            ],
            cpu=place.proxy,
        )  # fmt: skip
        procs.wait_ready(proc, port=port, text="chaoskit proxy ready")
        result = asyncio.run(measure(args, echo, port, proc.pid))
    result["placement"] = place.description
    text = json.dumps(result, indent=2)
    if args.out is not None:
        (run_dir / "result.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
