"""Fenced blocks of the Markdown docs, and the ``<!-- doctest: ... -->`` marker above each.

Every shell and Python example of docs/*.md and README.md must say what the tests do with it,
in an HTML comment on the line right above its opening fence (invisible on GitHub):

- ``<!-- doctest: run -->`` — run it: a Python block as a script, a bash block as a script, a
  transcript (lines starting ``$ ``) command by command, its quoted output checked.
  ``<!-- doctest: run; bookinfo-ports -->`` also holds the demo's fixed ports 19080-19085 while
  it runs (tests wait for each other instead of colliding).
- ``<!-- doctest: skip: REASON -->`` — not run, and why (what covers it instead).
- ``<!-- doctest: output -->`` — a text block: the exact standard output of the ``run`` block
  right above it.
- ``<!-- doctest: file NAME -->`` — any block: written to ``NAME`` in the folder every runnable
  block of the same page runs in (an ``abort.yaml`` a later ``chaoskit apply abort.yaml`` uses).
- ``<!-- doctest: pytest PROJECT [NAME] -->`` — a Python block is a file of the pytest project
  ``PROJECT`` (``conftest.py``, or a test module when ``NAME`` is left out); the project's blocks
  from every page run together as one pytest session (tests/docs/sandbox.py says on what).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: The pages whose examples must all be marked: the docs and the README.
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]

_FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*doctest:\s*(.*?)\s*-->$")
SHELL_LANGS = frozenset({"bash", "sh", "shell"})
PYTHON_LANGS = frozenset({"python", "py"})
ACTIONS = ("run", "skip", "output", "file", "pytest")
OPTIONS = frozenset({"bookinfo-ports"})


@dataclasses.dataclass(frozen=True)
class Block:
    doc: str
    line: int  # line of the first line inside the fence, 1-based
    lang: str
    text: str
    marker: str | None = None  # what the <!-- doctest: ... --> comment above the fence says

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def is_transcript(self) -> bool:
        """A shell session as a user sees it: ``$ command`` lines, each followed by its output."""
        first = self.text.lstrip("\n").split("\n", 1)[0]
        return self.lang in ("text", "console", "") and first.startswith("$ ")

    @property
    def kind(self) -> str | None:
        """``python``, ``shell`` or ``transcript`` for an example that must be marked."""
        if self.lang in PYTHON_LANGS:
            return "python"
        if self.lang in SHELL_LANGS:
            return "shell"
        if self.is_transcript:
            return "transcript"
        return None

    @property
    def action(self) -> str | None:
        return None if self.marker is None else re.split(r"[\s:;]", self.marker, maxsplit=1)[0]

    @property
    def args(self) -> list[str]:
        """The words after the action (``file NAME`` → ``[NAME]``)."""
        assert self.marker is not None
        return self.marker.split(";")[0].split()[1:]

    @property
    def options(self) -> set[str]:
        """The words after ``;`` (``run; bookinfo-ports`` → ``{"bookinfo-ports"}``)."""
        assert self.marker is not None
        _, _, rest = self.marker.partition(";")
        return set(rest.split())

    @property
    def skip_reason(self) -> str:
        assert self.marker is not None and self.action == "skip"
        return self.marker.partition(":")[2].strip()


def read_blocks(path: Path) -> list[Block]:
    """Fenced blocks of a Markdown file, in order, each with the marker right above it."""
    out: list[Block] = []
    lang: str | None = None
    start = 0
    body: list[str] = []
    marker: str | None = None
    previous = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = _FENCE.match(line)
        if lang is None:
            if fence:
                found = _MARKER.match(previous.strip())
                lang, start, body = fence.group(1), number + 1, []
                marker = found.group(1) if found else None
        elif line.strip() == "```":
            out.append(Block(path.name, start, lang, "\n".join(body) + "\n", marker))
            lang = None
        else:
            body.append(line)
        previous = line
    assert lang is None, f"{path.name}:{start - 1}: unterminated ``` block"
    return out


BLOCKS = {p.name: read_blocks(p) for p in PAGES}
ALL_BLOCKS = [b for blocks in BLOCKS.values() for b in blocks]


def marker_problem(block: Block) -> str | None:
    """Why ``block``'s marker is missing or malformed, or None when it is fine."""
    if block.marker is None:
        if block.kind is None:
            return None
        return (
            f"{block.where}: a {block.kind} example with no marker: put "
            "<!-- doctest: run --> or <!-- doctest: skip: REASON --> on the line above its "
            "fence (tests/docs/markdown.py lists the markers)"
        )
    action, args = block.action, block.args
    if action not in ACTIONS:
        return f"{block.where}: unknown doctest action {action!r} (one of {', '.join(ACTIONS)})"
    if action == "skip" and len(block.skip_reason.split()) < 3:
        return f"{block.where}: a skip needs a reason of a few words: <!-- doctest: skip: WHY -->"
    if action == "run" and not block.options <= OPTIONS:
        return f"{block.where}: unknown run options {sorted(block.options - OPTIONS)}"
    if action == "run" and block.kind is None:
        return f"{block.where}: only Python, shell and transcript ($ ...) blocks can run"
    if action == "file" and len(args) != 1:
        return f"{block.where}: <!-- doctest: file NAME --> takes one file name"
    if action == "pytest" and (block.kind != "python" or not 1 <= len(args) <= 2):
        return f"{block.where}: <!-- doctest: pytest PROJECT [NAME] --> is for Python blocks"
    if action in ("file", "pytest", "output") and block.kind == "transcript":
        return f"{block.where}: a transcript can only run or be skipped"
    return None


def output_of(block: Block) -> Block | None:
    """The ``<!-- doctest: output -->`` block right after ``block`` on its page, if any."""
    blocks = BLOCKS[block.doc]
    i = blocks.index(block)
    if i + 1 < len(blocks) and blocks[i + 1].action == "output":
        return blocks[i + 1]
    return None
