"""Starting, pinning, watching and always stopping the processes a benchmark needs.

Every process is started through :class:`Processes` (a context manager): in its own session
(process group), with its output in a log file of the run directory, optionally pinned to a CPU
with ``taskset``. Leaving the ``with`` block — normally, on an exception or on Ctrl-C — sends
SIGTERM to every group still alive, then SIGKILL after a grace period, so no benchmark leaves a
process behind.

CPU time, RSS and open file descriptors are read from ``/proc`` (Linux), or through psutil
when it is installed and ``/proc`` is not there; where neither exists they are ``None``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

try:  # optional: only where /proc is missing
    import psutil  # type: ignore[import-untyped, unused-ignore]
except ImportError:  # pragma: no cover - depends on the machine
    psutil = None

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchError(RuntimeError):
    """A benchmark could not run (a process did not start, a tool failed)."""


def pause(seconds: float) -> None:
    """Sleep without ``time.sleep`` (banned project-wide to keep it off the proxy loop)."""
    threading.Event().wait(seconds)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


# -- CPU placement ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Placement:
    """Which CPU each role runs on (``None``: not pinned)."""

    proxy: int | None
    client: int | None
    taskset: str | None

    @property
    def description(self) -> str:
        if self.taskset is None or self.proxy is None:
            return "not pinned (taskset missing or a single CPU)"
        return (
            f"proxy under test on CPU{self.proxy}; origin and load generator on "
            f"CPU{self.client}" + (" (shared)" if self.proxy != self.client else "")
        )

    def prefix(self, cpu: int | None) -> list[str]:
        if self.taskset is None or cpu is None:
            return []
        return [self.taskset, "-c", str(cpu)]


def placement() -> Placement:
    """Proxy on the last CPU we may use, origin and load on the first (docs/performance.md §6)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = list(range(os.cpu_count() or 1))
    taskset = shutil.which("taskset")
    if taskset is None or len(cpus) < 2:
        return Placement(None, None, None)
    return Placement(proxy=cpus[-1], client=cpus[0], taskset=taskset)


# -- /proc readings ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads)."""
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, IndexError, ValueError):
        pass
    if psutil is not None:
        with contextlib.suppress(Exception):
            t = psutil.Process(pid).cpu_times()
            return float(t.user + t.system)
    return None


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb(pid: int) -> float | None:
    kb = _status_kb(pid, "VmRSS")
    if kb is not None:
        return kb / 1024
    if psutil is not None:
        with contextlib.suppress(Exception):
            return float(psutil.Process(pid).memory_info().rss) / 2**20
    return None


def peak_rss_mb(pid: int) -> float | None:
    kb = _status_kb(pid, "VmHWM")
    return kb / 1024 if kb is not None else None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(_PROC / str(pid) / "fd"))
    except OSError:
        pass
    if psutil is not None:
        with contextlib.suppress(Exception):
            return int(psutil.Process(pid).num_fds())
    return None


def _tcp_table() -> dict[str, tuple[int, int, str]]:
    """Socket inode → (local port, remote port, state) for every TCP socket of the host."""
    table: dict[str, tuple[int, int, str]] = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
            table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16),
                            state)  # fmt: skip
    return table


def fd_kinds(pid: int, upstream_ports: Sequence[int]) -> dict[str, int] | None:
    """Open descriptors of a process by kind: ``upstream_pool`` (TCP connections to one of
    ``upstream_ports``), ``listening``, ``other_tcp``, ``other_sockets`` and ``files``."""
    try:
        names = os.listdir(_PROC / str(pid) / "fd")
    except OSError:
        return None
    tcp = _tcp_table()
    kinds = {"upstream_pool": 0, "listening": 0, "other_tcp": 0, "other_sockets": 0, "files": 0}
    for fd in names:
        try:
            target = os.readlink(_PROC / str(pid) / "fd" / fd)
        except OSError:
            continue
        if not target.startswith("socket:["):
            kinds["files"] += 1
            continue
        entry = tcp.get(target[8:-1])
        if entry is None:
            kinds["other_sockets"] += 1
        elif entry[2] == "0A":  # LISTEN
            kinds["listening"] += 1
        elif entry[1] in upstream_ports:
            kinds["upstream_pool"] += 1
        else:
            kinds["other_tcp"] += 1
    return kinds


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


# -- processes --------------------------------------------------------------------------------


@dataclasses.dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    cpu: int | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


class Processes:
    """Every process of one benchmark run; all of them are stopped when the block ends."""

    def __init__(self, run_dir: Path, place: Placement) -> None:
        self.run_dir = run_dir
        self.place = place
        self.procs: list[Proc] = []
        self._files: list[IO[bytes]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpu: int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log = self.run_dir / f"{name}.log"
        out = open(log, "wb")  # noqa: SIM115 - closed in stop_all
        self._files.append(out)
        full = [*self.place.prefix(cpu), *argv]
        popen = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        proc = Proc(name, popen, log, cpu)
        self.procs.append(proc)
        return proc

    def wait_ready(
        self, proc: Proc, *, port: int | None = None, text: str | None = None, timeout: float = 30
    ) -> float:
        """Wait until ``port`` accepts connections and ``text`` is in the log; seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise BenchError(f"{proc.name} exited early:\n{proc.tail()}")
            ok = (text is None or text in proc.output()) and (port is None or port_open(port))
            if ok:
                return time.monotonic() - t0
            pause(0.02)
        raise BenchError(f"{proc.name} not ready after {timeout:g}s:\n{proc.tail()}")

    def stop(self, proc: Proc, grace: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; the exit code."""
        if proc.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(grace)
        # anything the process left in its group (it started a session of its own)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        for f in self._files:
            with contextlib.suppress(OSError):
                f.close()
        self._files.clear()


def run_bounded(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run to completion in its own process group; on timeout kill the whole group."""
    with subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
        start_new_session=True,
    ) as p:
        try:
            out, err = p.communicate(input_text, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise BenchError(f"{argv[0]} timed out after {timeout:g}s") from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            raise
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@contextlib.contextmanager
def sampling(pid: int, every: float = 0.1) -> Iterator[dict[str, Any]]:
    """Sample a process's RSS in a thread while the block runs: ``{"peak_rss_mb": ...}``."""
    result: dict[str, Any] = {"peak_rss_mb": None}
    stop = threading.Event()

    def loop() -> None:
        peak = 0.0
        while not stop.wait(every):
            value = rss_mb(pid)
            if value is not None and value > peak:
                peak = value
                result["peak_rss_mb"] = round(peak, 1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join(2)
