"""Starting the applications under test, with the mesh proxy in their environment.

Each app gets ``HTTP_PROXY``/``HTTPS_PROXY`` naming its workload (so ``sourceLabels`` and Sidecars
see who calls), the CA bundle variables, and its own ``env``. Output goes to a log file whose
tail is shown when the app fails to start. Stopping is TERM, then KILL after a grace period.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import requests

from chaoskit.config.experiment import App
from chaoskit.errors import ChaosKitError

STOP_GRACE_SECONDS = 5.0


class AppError(ChaosKitError):
    """An application under test failed to start or to become ready."""


def proxy_env(proxy_url: str, ca_path: Path) -> dict[str, str]:
    """What a process needs to send its outbound HTTP(S) through the mesh."""
    return {
        "HTTP_PROXY": proxy_url,
        "HTTPS_PROXY": proxy_url,
        "http_proxy": proxy_url,
        "https_proxy": proxy_url,
        "NO_PROXY": "",
        "no_proxy": "",
        "REQUESTS_CA_BUNDLE": str(ca_path),
        "SSL_CERT_FILE": str(ca_path),
        "CURL_CA_BUNDLE": str(ca_path),
    }


class RunningApp:
    def __init__(self, app: App, process: subprocess.Popen[bytes], log: Path) -> None:
        self.app = app
        self.process = process
        self.log = log

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_GRACE_SECONDS)


def _command(app: App) -> list[str]:
    cmd = list(app.command)
    if cmd and cmd[0] in ("python", "python3"):
        cmd[0] = sys.executable  # the interpreter chaoskit runs in, with chaoskit importable
    return cmd


def start_apps(
    apps: tuple[App, ...],
    *,
    cwd: Path,
    logs: Path,
    env_for: Callable[[str], dict[str, str]],
    stop: threading.Event,
) -> list[RunningApp]:
    """Start every app, then wait for each readiness URL; raise :class:`AppError` on failure."""
    running: list[RunningApp] = []
    try:
        for app in apps:
            _refuse_taken_port(app)
            log = logs / f"{app.name}.log"
            env = {**os.environ, **env_for(app.workload or app.name), **app.env}
            with open(log, "wb") as out:
                try:
                    process = subprocess.Popen(
                        _command(app),
                        cwd=cwd,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                except OSError as e:
                    raise AppError(
                        f"app {app.name!r}: cannot start {app.command[0]!r}: {e.strerror}"
                    ) from None
            running.append(RunningApp(app, process, log))
        for r in running:
            _wait_ready(r, stop)
    except BaseException:
        for r in running:
            r.stop()
        raise
    return running


def _refuse_taken_port(app: App) -> None:
    """An app whose ready URL already answers before it starts would be judged ready by
    another process on its port (a second run, a test suite, a dev server), and the
    experiment would measure that process instead: refuse to start."""
    if app.ready is None:
        return
    parts = urllib.parse.urlsplit(app.ready)
    if parts.hostname is None or parts.port is None:
        return
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=0.5):
            pass
    except OSError:
        return  # nothing listens there yet: the port is the app's to take
    raise AppError(
        f"app {app.name!r}: {parts.hostname}:{parts.port} (its ready URL) already accepts "
        "connections before the app started: another process holds the port; stop it, or "
        "give the app another port"
    )


def _wait_ready(r: RunningApp, stop: threading.Event) -> None:
    url = r.app.ready
    deadline = time.monotonic() + r.app.ready_timeout
    last = ""
    while time.monotonic() < deadline and not stop.is_set():
        if r.process.poll() is not None:
            raise AppError(
                f"app {r.app.name!r} exited with status {r.process.returncode} during "
                f"start-up; its output ends with:\n{r.tail()}"
            )
        if url is None:
            return
        try:
            with requests.Session() as s:
                s.trust_env = False
                resp = s.get(url, timeout=1.0)
            if resp.status_code < 500:
                return
            last = f"HTTP {resp.status_code}"
        except requests.RequestException as e:
            last = type(e).__name__
        stop.wait(0.05)
    raise AppError(
        f"app {r.app.name!r} was not ready at {url} within "
        f"{r.app.ready_timeout:g}s (last: {last}); its output ends with:\n{r.tail()}"
    )
