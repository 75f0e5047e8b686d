"""One benchmark run: its plan, its processes, and the servers under test (started on demand).

Servers (all on 127.0.0.1, free ports):

``origin``      :mod:`bench.origin` on two ports (the realistic mesh's v1 and v2 endpoints).
``direct``      no proxy: the origin itself.
``mitmdump``    stock ``mitmdump --mode reverse:http://127.0.0.1:<origin> -q
                --set connection_strategy=lazy`` (passthrough, no addon).
``chaoskit``    ``chaoskit proxy`` (the CLI) with the realistic mesh, seed 42, access log to a
                file; requests go through it as a forward proxy (``GET http://web/``).
``mitmdump-s``  ``mitmdump -s chaoskit/proxy/script.py`` with the same mesh and seed.
``lean-master`` :mod:`bench.lean`: mitmproxy's lean Master (the five addons chaoskit's runtime
                uses) with no addon, stock hook dispatch, forwarding natively: mitmproxy's own cost.
``fidelity-*``  fresh ``chaoskit proxy`` processes for the repeatability check (seeds 42, 42, 43).
``scale-N``     ``chaoskit proxy`` with N services / VirtualServices (scenario 4).
``memory``      a fresh ``chaoskit proxy`` for the memory scenario.
``bodies``      a fresh ``chaoskit proxy`` with :func:`bench.configs.bodies_mesh`, for the
                large-body scenario.

Proxies run on the proxy CPU, the origin and every load generator on the client CPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from bench import configs
from bench.load import Endpoint, Load
from bench.procs import BenchError, Placement, Proc, Processes, free_port

REPO = Path(__file__).resolve().parents[1]
SEED = 42


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long and how often; one per mode (``smoke`` < ``fast`` < ``full``)."""

    name: str
    tp_repeats: int
    tp_seconds: float
    tp_warmup: float
    light_count: int  # interleaved requests per target at 10 req/s
    delay_count: int  # 100 ms-delay requests at 10 req/s
    sat_seconds: float  # each run under load (a fraction of the saturation throughput)
    sat_repeats: int
    sat_fractions: tuple[float, ...]
    burst_conns: int
    burst_repeats: int
    abort_count: int
    scale_sizes: tuple[int, ...]
    scale_validate_repeats: int
    scale_repeats: int
    scale_seconds: float
    pytest_tests: int
    pytest_repeats: int
    memory_warmup: int
    memory_requests: int
    memory_segments: int
    memory_idle_wait: float  # seconds idle before a last fd reading (0: none)
    bodies_mb: int  # size of each upload of the large-body scenario, MiB
    bodies_within: int  # concurrent uploads that fit in the default body budget together
    bodies_over: int  # concurrent uploads that do not
    bodies_after_s: float  # seconds after the last answer before RSS is read again
    profile_seconds: float


PLANS = {
    "smoke": Plan(
        "smoke", tp_repeats=1, tp_seconds=0.5, tp_warmup=0.2, light_count=10, delay_count=5,
        sat_seconds=0.5, sat_repeats=1, sat_fractions=(0.8,), burst_conns=20, burst_repeats=1,
        abort_count=200,
        scale_sizes=(1, 10), scale_validate_repeats=1, scale_repeats=1, scale_seconds=0.5,
        pytest_tests=3, pytest_repeats=1, memory_warmup=100, memory_requests=500,
        memory_segments=2, memory_idle_wait=0, bodies_mb=1, bodies_within=2, bodies_over=4,
        bodies_after_s=0.5, profile_seconds=1,
    ),
    "fast": Plan(
        "fast", tp_repeats=2, tp_seconds=2, tp_warmup=1, light_count=60, delay_count=50,
        sat_seconds=2, sat_repeats=1, sat_fractions=(0.8,), burst_conns=500, burst_repeats=1,
        abort_count=2000,
        scale_sizes=(1, 100, 1000), scale_validate_repeats=1, scale_repeats=1, scale_seconds=2,
        pytest_tests=100, pytest_repeats=1, memory_warmup=1500, memory_requests=5000,
        memory_segments=4, memory_idle_wait=0, bodies_mb=16, bodies_within=3,
        bodies_over=20, bodies_after_s=2, profile_seconds=5,
    ),
    "full": Plan(
        "full", tp_repeats=5, tp_seconds=10, tp_warmup=2, light_count=1200, delay_count=600,
        sat_seconds=15, sat_repeats=3, sat_fractions=(0.5, 0.8), burst_conns=500,
        burst_repeats=3, abort_count=10_000,
        scale_sizes=(1, 100, 1000), scale_validate_repeats=3, scale_repeats=3,
        scale_seconds=10, pytest_tests=100, pytest_repeats=3, memory_warmup=10_000,
        memory_requests=100_000, memory_segments=10, memory_idle_wait=65, bodies_mb=60,
        bodies_within=3, bodies_over=20, bodies_after_s=2, profile_seconds=15,
    ),
}  # fmt: skip


def _env() -> dict[str, str]:
    """Child environment: the repository importable, no proxy variables leaking in."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _mitmdump() -> list[str]:
    """The mitmdump next to this interpreter (same venv), else mitmproxy's entry point."""
    beside = Path(sys.executable).parent / "mitmdump"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mitmdump")
    if found:
        return [found]
    return [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]


def script_path() -> str:
    spec = importlib.util.find_spec("chaoskit.proxy.script")
    if spec is None or spec.origin is None:
        raise BenchError("chaoskit.proxy.script not found: is chaoskit installed?")
    return spec.origin


@dataclasses.dataclass
class Server:
    name: str
    proc: Proc | None
    endpoint: Endpoint
    ready_s: float = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


def probe(ep: Endpoint, timeout: float = 5.0) -> int:
    """One request with a plain socket; the status code (0 when nothing sensible came back)."""
    host = ep.host or f"127.0.0.1:{ep.port}"
    head = f"GET {ep.target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in ep.headers) + "\r\n"
    with socket.create_connection(("127.0.0.1", ep.port), timeout=timeout) as s:
        s.sendall(head.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


class Bench:
    """Holds a run's plan, directory, processes, servers and results."""

    def __init__(
        self, plan: Plan, run_dir: Path, procs: Processes, place: Placement, load: Load
    ) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.procs = procs
        self.place = place
        self.load = load
        self.env = _env()
        self.servers: dict[str, Server] = {}
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        self.origin_ports = (free_port(), free_port())
        self.mesh_file = run_dir / "mesh.yaml"
        self.mesh_file.write_text(configs.realistic_mesh(*self.origin_ports))

    # -- servers ----------------------------------------------------------------------------

    def _chaoskit_cli(self, name: str, mesh: Path, seed: int = SEED) -> tuple[Proc, int, str]:
        port, admin = free_port(), free_port()
        state = self.run_dir / f"{name}-state"
        argv = [
            sys.executable, "-m", "chaoskit", "proxy", "-f", str(mesh),
            "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
            "--seed", str(seed), "--state-dir", str(state),
            "--access-log", str(self.run_dir / f"{name}-access.log"),
        ]  # fmt: skip
        proc = self.procs.spawn(name, argv, cpu=self.place.proxy, env=self.env)
        return proc, port, "chaoskit proxy ready"

    def _spawn(self, name: str) -> tuple[Proc | None, Endpoint, str | None]:
        o1, o2 = self.origin_ports
        web = ("http://web/", "web")  # request-target and Host of the mesh service
        if name == "origin":
            argv = [sys.executable, "-m", "bench.origin", str(o1), str(o2)]
            proc = self.procs.spawn(name, argv, cpu=self.place.client, env=self.env)
            return proc, Endpoint("direct", o1), "ready"
        if name == "mitmdump":
            port = free_port()
            argv = [
                *_mitmdump(), "--mode", f"reverse:http://127.0.0.1:{o1}",
                "--listen-host", "127.0.0.1", "-p", str(port), "-q",
                "--set", "connection_strategy=lazy",
                "--set", f"confdir={self.run_dir / 'mitmdump-conf'}",
            ]  # fmt: skip
            proc = self.procs.spawn(name, argv, cpu=self.place.proxy, env=self.env)
            return proc, Endpoint(name, port), None
        if name == "lean-master":
            port = free_port()
            argv = [
                sys.executable, "-m", "bench.lean", f"http://127.0.0.1:{o1}", str(port),
                str(self.run_dir / "lean-conf"),
            ]  # fmt: skip
            proc = self.procs.spawn(name, argv, cpu=self.place.proxy, env=self.env)
            return proc, Endpoint(name, port), None
        if name == "mitmdump-s":
            port = free_port()
            argv = [
                *_mitmdump(), "-s", script_path(), "--listen-host", "127.0.0.1",
                "-p", str(port), "-q", "--set", f"chaoskit_config={self.mesh_file}",
                "--set", f"chaoskit_seed={SEED}",
                "--set", f"confdir={self.run_dir / 'mitmdump-s-conf'}",
            ]  # fmt: skip
            proc = self.procs.spawn(name, argv, cpu=self.place.proxy, env=self.env)
            return proc, Endpoint(name, port, *web), None
        if name == "bodies":
            mesh = self.run_dir / "bodies.yaml"
            mesh.write_text(configs.bodies_mesh(o1, o2))
            proc, port, text = self._chaoskit_cli(name, mesh)
            host = configs.BODIES_HOST
            return proc, Endpoint(name, port, target=f"http://{host}/", host=host), text
        if name in ("chaoskit", "memory", "fidelity-a", "fidelity-b"):
            proc, port, text = self._chaoskit_cli(name, self.mesh_file)
            return proc, Endpoint(name, port, *web), text
        if name == "fidelity-c":
            proc, port, text = self._chaoskit_cli(name, self.mesh_file, seed=SEED + 1)
            return proc, Endpoint(name, port, *web), text
        if name.startswith("scale-"):
            n = int(name.split("-")[1])
            mesh = self.run_dir / f"scale-{n}.yaml"
            if not mesh.exists():
                mesh.write_text(configs.scale_mesh(n, o1, o2))
            proc, port, text = self._chaoskit_cli(name, mesh)
            host = configs.scale_host(n // 2)
            return proc, Endpoint(name, port, target=f"http://{host}/", host=host), text
        raise BenchError(f"unknown server {name!r}")

    def ensure(self, *names: str, timeout: float = 60) -> list[Server]:
        """Start the servers not running yet (in parallel), wait until each answers 200."""
        wanted = [n for n in names if n != "direct"]
        if "direct" in names or wanted:
            wanted = ["origin", *[n for n in wanted if n != "origin"]]
        started: list[tuple[str, Proc | None, Endpoint, str | None, float]] = []
        for name in wanted:
            if name in self.servers:
                continue
            t0 = time.monotonic()
            proc, ep, text = self._spawn(name)
            started.append((name, proc, ep, text, t0))
            if name == "origin":  # everything else needs it
                assert proc is not None
                self.procs.wait_ready(proc, port=ep.port, text=text, timeout=timeout)
        for name, proc, ep, text, t0 in started:
            if proc is not None and name != "origin":
                self.procs.wait_ready(proc, port=ep.port, text=text, timeout=timeout)
            ready = time.monotonic() - t0
            server = Server(name, proc, ep, ready)
            status = probe(ep)
            if status != 200:
                tail = proc.tail() if proc is not None else ""
                raise BenchError(f"{name}: a probe request got {status}, not 200\n{tail}")
            self.servers[name] = server
        if "direct" in names and "direct" not in self.servers:
            origin = self.servers["origin"]
            self.servers["direct"] = Server("direct", None, origin.endpoint)
        return [self.servers[n] for n in names]

    def stop(self, *names: str) -> None:
        for name in names:
            server = self.servers.pop(name, None)
            if server is not None and server.proc is not None:
                self.procs.stop(server.proc)
