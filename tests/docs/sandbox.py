"""Where and how the docs' examples run: a user's folder in a temporary directory.

The folder (``work/``) holds what the docs assume a reader has:

- ``mesh/``: a copy of the Bookinfo demo mesh (experiments/bookinfo/mesh/), the ``mesh/`` most
  examples name; ``experiments/``: a copy of the repository's experiments;
- ``.venv``: a link to the virtual environment running the tests (``.venv/bin/chaoskit``);
- every ``<!-- doctest: file NAME -->`` block of the same page.

``HOME`` is ``<tmp>/home/you``, so ``~/.chaoskit`` (the proxy's CA) is private to the run and
shows in output as ``/home/you/.chaoskit``, as the docs print it. Proxy variables of the
environment running the tests are dropped. Every command and script is bounded in time; a
process still running at its deadline is killed with its whole process group (a proxy started
by an example never outlives it). A transcript's command that serves (``chaoskit proxy``) is
stopped once the output the docs quote for it has appeared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.docs.markdown import ALL_BLOCKS, BLOCKS, ROOT, Block

TIMEOUT = 60.0
#: The test runner's own settings that would leak into an example (proxies, state folders, and
#: pytest's: an xdist worker's variables would make a nested pytest act as that worker).
_DROPPED = re.compile(
    r"^(https?_proxy|all_proxy|no_proxy|chaoskit_home|xdg_state_home|pytest_.*)$", re.IGNORECASE
)


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _DROPPED.match(k)}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(home),
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        COLUMNS="100",
    )
    return env


@dataclasses.dataclass
class Sandbox:
    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def home(self) -> Path:
        return self.root / "home" / "you"

    @classmethod
    def create(cls, root: Path, doc: str) -> Sandbox:
        box = cls(root)
        box.home.mkdir(parents=True)
        box.work.mkdir()
        shutil.copytree(ROOT / "experiments" / "bookinfo" / "mesh", box.work / "mesh")
        shutil.copytree(
            ROOT / "experiments",
            box.work / "experiments",
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis"),
        )
        (box.work / ".venv").symlink_to(Path(sys.executable).parent.parent)
        for block in BLOCKS[doc]:
            if block.action == "file":
                (box.work / block.args[0]).write_text(block.text, encoding="utf-8")
        return box

    def _start(self, args: list[str], cwd: Path | None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            args,
            cwd=cwd or self.work,
            env=environment(self.home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # together, as a terminal shows them
            text=True,
            start_new_session=True,
        )

    def _clean(self, text: str) -> str:
        return text.replace(str(self.root), "")

    def run(self, args: list[str], *, timeout: float = TIMEOUT, cwd: Path | None = None) -> Ran:
        """Run ``args`` in the folder; kill its process group when it outlives ``timeout``."""
        proc = self._start(args, cwd)
        try:
            out, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            timed_out = True
        finally:
            _kill_group(proc)  # whatever the example left running in the background goes too
        return Ran(args, proc.returncode, self._clean(out), timed_out)

    def run_until(self, args: list[str], expected: list[str], *, timeout: float = TIMEOUT) -> Ran:
        """Run a transcript's command until it exits or — a server, such as ``chaoskit proxy``
        — until all the output the docs quote for it has appeared; then stop it (SIGTERM to its
        process group, SIGKILL if it lingers). The output is what had appeared by then."""
        proc = self._start(args, None)
        lines: list[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(self._clean(line.rstrip("\n")))

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        seen: list[str] | None = None
        while seen is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                reader.join(5)
                seen = list(lines)
            elif expected and output_matches(expected, list(lines)):
                seen = list(lines)
            else:
                reader.join(0.05)  # a bounded wait for more output
        try:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            _kill_group(proc)
            proc.wait()
            reader.join(5)
            assert proc.stdout is not None
            proc.stdout.close()
        output = "\n".join(lines if seen is None else seen) + "\n"
        return Ran(args, proc.returncode, output, timed_out=seen is None)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class Ran:
    args: list[str]
    returncode: int
    output: str
    timed_out: bool

    def describe(self) -> str:
        how = "timed out" if self.timed_out else f"exited {self.returncode}"
        return f"{' '.join(self.args)!r} {how}; output:\n{self.output}"


# -- transcripts ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Step:
    command: str
    expected: list[str]


def transcript_steps(text: str) -> list[Step]:
    """``$ command`` lines (with ``\\`` continuations), each with the output quoted below it."""
    steps: list[Step] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        assert line.startswith("$ "), f"transcript line {i + 1} is not a command: {line!r}"
        command = [line[2:]]
        while command[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        i += 1
        expected: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        while expected and not expected[-1].strip():
            expected.pop()
        steps.append(Step("\n".join(command), expected))
    return steps


def _line_pattern(expected: str) -> re.Pattern[str]:
    """``...`` inside a quoted line stands for any text."""
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Do the quoted lines match the real ones? A line that is only ``...`` stands for any
    number of lines; ``...`` inside a line for any text; trailing spaces do not count."""
    actual = [a.rstrip() for a in actual]
    while actual and not actual[-1]:
        actual.pop()
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(expected):
            result = j == len(actual)
        elif expected[i].strip() == "...":
            result = any(match(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            result = (
                j < len(actual)
                and _line_pattern(expected[i].rstrip()).fullmatch(actual[j]) is not None
                and match(i + 1, j + 1)
            )
        memo[(i, j)] = result
        return result

    return match(0, 0)


def mismatch(what: str, expected: list[str], actual: str) -> str:
    return (
        f"{what}: the output quoted in the docs does not match the real one\n"
        "--- quoted (a line '...' = any lines, '...' in a line = any text):\n"
        + "\n".join(expected)
        + "\n--- real:\n"
        + actual
    )


def project_blocks(project: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.action == "pytest" and b.args[0] == project]
