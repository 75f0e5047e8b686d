"""Driving load from a separate process: ``wrk`` when installed, else :mod:`bench.loadgen`.

Both tools run pinned to the client CPU. :meth:`Load.saturate` is the throughput measurement
(keep-alive connections sending back to back); everything else always uses the Python
generator, because wrk cannot pace requests, interleave targets or report ordered statuses.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.procs import BenchError, Placement, cpu_seconds, run_bounded


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where and how to send a request: an origin, a reverse proxy or a forward proxy."""

    name: str
    port: int
    #: The request-target: ``/`` (origin, reverse proxy) or ``http://web/`` (forward proxy).
    target: str = "/"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def with_headers(self, name: str, *headers: tuple[str, str]) -> Endpoint:
        return dataclasses.replace(self, name=name, headers=(*self.headers, *headers))

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "port": self.port,
            "target": self.target,
            "host": self.host or f"127.0.0.1:{self.port}",
            "headers": dict(self.headers),
        }


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_LAT = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


def parse_wrk(text: str) -> dict[str, Any]:
    """The figures of ``wrk --latency`` output."""
    out: dict[str, Any] = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text)
    if not m:
        raise BenchError(f"cannot read wrk output:\n{text}")
    out["requests"] = int(m.group(1))
    out["seconds"] = float(m.group(2)) * _UNITS[m.group(3)] / 1000
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(rps.group(1)) if rps else out["requests"] / out["seconds"]
    latency = {f"p{q}": round(float(v) * _UNITS[u], 3) for q, v, u in _LAT.findall(text)}
    out["latency_ms"] = latency
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = sum(int(x) for x in sock.groups()) if sock else 0
    return out


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Load:
    """Runs load generators on the client CPU; wrk preferred for saturation."""

    def __init__(self, place: Placement, run_dir: Path, *, use_wrk: bool = True) -> None:
        self.place = place
        self.run_dir = run_dir
        self.wrk = shutil.which("wrk") if use_wrk else None
        self.python = sys.executable

    @property
    def tool(self) -> str:
        return "wrk" if self.wrk else "python (bench.loadgen)"

    def wrk_version(self) -> str | None:
        if self.wrk is None:
            return None
        res = run_bounded([self.wrk, "-v"], timeout=10)
        return (
            (res.stdout or res.stderr).splitlines()[0].strip()
            if (res.stdout or res.stderr)
            else None
        )

    def _script(self, ep: Endpoint) -> Path:
        path = self.run_dir / f"wrk-{ep.name}.lua"
        lines = [
            f"wrk.path = {_lua_string(ep.target)}",
            f'wrk.headers["Host"] = {_lua_string(ep.host or f"127.0.0.1:{ep.port}")}',
        ]
        lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in ep.headers]
        path.write_text("\n".join(lines) + "\n")
        return path

    def _wrk(self, ep: Endpoint, conns: int, seconds: float) -> dict[str, Any]:
        """One wrk run; wrk takes whole seconds, so anything shorter runs for 1 s."""
        assert self.wrk is not None
        argv = [
            *self.place.prefix(self.place.client),
            self.wrk, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s", "-s", str(self._script(ep)), f"http://127.0.0.1:{ep.port}/",
        ]  # fmt: skip
        res = run_bounded(argv, timeout=seconds + 30)
        if res.returncode != 0:
            raise BenchError(f"wrk failed ({res.returncode}): {(res.stderr or res.stdout)[-500:]}")
        return parse_wrk(res.stdout)

    def saturate(
        self,
        ep: Endpoint,
        *,
        conns: int = 50,
        seconds: float = 10,
        warmup: float = 2,
        pid: int | None = None,
    ) -> dict[str, Any]:
        """Keep-alive connections sending back to back; with ``pid``, that process's CPU."""
        if self.wrk is not None:
            if warmup > 0:
                self._wrk(ep, conns, warmup)
            cpu0 = cpu_seconds(pid) if pid else None
            out = self._wrk(ep, conns, seconds)
            cpu1 = cpu_seconds(pid) if pid else None
        else:
            spec = {"mode": "closed", "conns": conns, "warmup": warmup, "duration": seconds}
            cpu0 = None
            if pid:
                # the CPU window must cover only the measured part: warm up separately
                if warmup > 0:
                    self.python_load({**spec, "warmup": 0, "duration": warmup}, [ep])
                cpu0 = cpu_seconds(pid)
                spec["warmup"] = 0
            out = self.python_load(spec, [ep])
            cpu1 = cpu_seconds(pid) if pid else None
            out.pop("statuses", None)
            out["non_2xx"] = 0
        out["tool"] = "wrk" if self.wrk else "python"
        if cpu0 is not None and cpu1 is not None and out["requests"]:
            out["cpu_s"] = round(cpu1 - cpu0, 3)
            out["cpu_ms_per_req"] = round((cpu1 - cpu0) * 1000 / out["requests"], 4)
            out["cpu_util"] = round((cpu1 - cpu0) / out["seconds"], 3) if out["seconds"] else None
        return out

    def python_load(
        self, spec: dict[str, Any], endpoints: list[Endpoint], timeout: float | None = None
    ) -> dict[str, Any]:
        """Run :mod:`bench.loadgen` in its own process on the client CPU."""
        full = {**spec, "targets": [e.spec() for e in endpoints]}
        budget = timeout or (
            float(spec.get("warmup", 0)) + float(spec.get("duration", 0)) + 60
            + float(spec.get("count", 0)) / max(float(spec.get("rate", 100)), 1)
        )  # fmt: skip
        argv = [*self.place.prefix(self.place.client), self.python, "-m", "bench.loadgen"]
        res = run_bounded(argv, timeout=budget, input_text=json.dumps(full))
        if res.returncode != 0:
            raise BenchError(f"bench.loadgen failed ({res.returncode}):\n{res.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(res.stdout)
        return result
