"""The pieces the docs' example runner is built from: markers, transcripts, output matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import Block, marker_problem, read_blocks
from tests.docs.sandbox import output_matches, transcript_steps


def test_a_marker_is_the_comment_right_above_the_fence(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- doctest: run -->\n```bash\ntrue\n```\n\n"
        "<!-- doctest: skip: needs a fixed port -->\n\n```python\npass\n```\n"
    )
    marked, spaced = read_blocks(page)
    assert (marked.marker, marked.action, marked.kind) == ("run", "run", "shell")
    assert spaced.marker is None  # a blank line in between: not its marker
    assert "no marker" in (marker_problem(spaced) or "")


@pytest.mark.parametrize(
    ("lang", "text", "marker", "problem"),
    [
        ("python", "pass\n", None, "no marker"),
        ("text", "$ chaoskit validate mesh/\n", None, "a transcript example with no marker"),
        ("bash", "true\n", "skip: later", "a reason of a few words"),
        ("bash", "true\n", "maybe", "unknown doctest action 'maybe'"),
        ("yaml", "a: 1\n", "run", "only Python, shell and transcript"),
        ("text", "$ ls\n", "file x.sh", "a transcript can only run or be skipped"),
        ("bash", "true\n", "pytest checkout", "is for Python blocks"),
        ("bash", "true\n", "run; bookinfo-port", "unknown run options ['bookinfo-port']"),
    ],
)
def test_marker_problems_are_named(lang, text, marker, problem):
    assert problem in (marker_problem(Block("page.md", 3, lang, text, marker)) or "")


@pytest.mark.parametrize(
    ("lang", "text", "marker"),
    [
        ("yaml", "a: 1\n", None),  # YAML is validated elsewhere; no marker needed
        ("text", "usage: chaoskit\n", None),
        ("python", "pass\n", "skip: needs the default admin port"),
        ("python", "pass\n", "pytest checkout conftest.py"),
        ("text", "$ true\n", "run; bookinfo-ports"),
    ],
)
def test_markers_that_are_fine(lang, text, marker):
    assert marker_problem(Block("page.md", 3, lang, text, marker)) is None


def test_transcript_commands_with_continuations_and_their_output():
    steps = transcript_steps("$ chaoskit proxy \\\n    -f mesh/\nready\n\n$ true\n")
    assert [(s.command, s.expected) for s in steps] == [
        ("chaoskit proxy \\\n    -f mesh/", ["ready"]),
        ("true", []),
    ]


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        (["a", "b"], ["a", "b", ""], True),
        (["a", "b"], ["a", "c"], False),
        (["a"], ["a", "b"], False),  # an unquoted extra line is a difference
        (["a", "...", "d"], ["a", "b", "c", "d"], True),
        (["a", "...", "d"], ["a", "d"], True),
        (["a", "...", "d"], ["a", "b"], False),
        (["verdict: HELD ..."], ["verdict: HELD — 4 of 4 checks passed"], True),
        (["x ... y"], ["x  z  y  "], True),
        (["x ... y"], ["x z"], False),
        (["a.b"], ["axb"], False),  # only ... is special
    ],
)
def test_output_matching(expected, actual, matches):
    assert output_matches(expected, actual) is matches
