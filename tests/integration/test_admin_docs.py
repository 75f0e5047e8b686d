"""The curl session of docs/proxy.md "Faults by name" runs as written against a real proxy on the
Bookinfo mesh: each ``$ curl`` command is run (the admin address put in) and its output must be
the one quoted, where a ``...`` line stands for any lines."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoskit.proxy.api import Proxy

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "proxy.md"
BOOKINFO = ROOT / "experiments" / "bookinfo" / "mesh"
CURL = shutil.which("curl")
DOC_ADMIN = "http://127.0.0.1:15000"


def faults_session() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of the first ```text block of the section."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Faults by name") :]
    block = section[section.index("```text\n") + len("```text\n") :]
    lines = block[: block.index("\n```")].splitlines()
    session: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            session.append((line[2:], []))
        elif session and session[-1][0].endswith("\\") and not session[-1][1]:
            session[-1] = (session[-1][0][:-1].rstrip() + " " + line.strip(), [])
        else:
            session[-1][1].append(line)
    return session


def matches(expected: list[str], actual: str) -> bool:
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "..." else re.escape(line) + r"\n" for line in expected
    )
    return re.fullmatch(pattern, actual) is not None


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(str(BOOKINFO), seed=1, state_dir=state, gateway_ports={8080: 0}) as p:
        yield p


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_the_faults_curl_session_runs_as_written(bookinfo):
    session = faults_session()
    assert len(session) >= 5, session
    for command, expected in session:
        argv = shlex.split(command.replace(DOC_ADMIN, bookinfo.admin_url))
        assert argv[0] == "curl", command
        done = subprocess.run([CURL, "-sS", *argv[1:]], capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
        assert matches(expected, done.stdout), f"$ {command}\n{done.stdout}"
    assert not bookinfo.layer.faults  # the session ends with a reset
