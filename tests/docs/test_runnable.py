"""Every shell and Python example of the docs runs as written, or says why not.

The markers are described in tests/docs/markdown.py; the folder the examples run in, in
tests/docs/sandbox.py. A new example without a marker fails
``test_every_example_is_marked``, so none can silently stop working.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path

import pytest

from tests.docs.markdown import ALL_BLOCKS, ROOT, Block, marker_problem, output_of
from tests.docs.sandbox import (
    Sandbox,
    mismatch,
    output_matches,
    project_blocks,
    transcript_steps,
)

pytestmark = pytest.mark.integration

RUN = [b for b in ALL_BLOCKS if b.action == "run"]
#: pytest projects the docs' test examples join: where their other files come from. The
#: example's own conftest.py and test modules come from the docs only.
PROJECTS = {"checkout": ROOT / "experiments" / "checkout-pytest"}


def test_every_example_is_marked():
    problems = [p for b in ALL_BLOCKS if (p := marker_problem(b))]
    for i, b in enumerate(ALL_BLOCKS):
        before = ALL_BLOCKS[i - 1] if i else None
        if b.action == "output" and (
            before is None or (before.doc, before.action) != (b.doc, "run")
        ):
            problems.append(f"{b.where}: an output block must follow a block that runs")
    assert not problems, "\n".join(problems)
    assert RUN, "no example is marked <!-- doctest: run -->"


def test_every_pytest_project_has_its_files():
    used = {b.args[0] for b in ALL_BLOCKS if b.action == "pytest"}
    assert used <= set(PROJECTS), f"unknown pytest projects: {sorted(used - set(PROJECTS))}"


@contextlib.contextmanager
def holding(block: Block):
    """The demo services' fixed ports, for the examples that start them (others wait)."""
    if "bookinfo-ports" in block.options:
        from tests.chaoskit.demo.test_bookinfo import fixed_ports_lock

        with fixed_ports_lock():
            yield
    else:
        yield


@pytest.mark.timeout(180)
@pytest.mark.parametrize("block", RUN, ids=lambda b: b.where)
def test_example_runs_as_written(block: Block, tmp_path: Path):
    box = Sandbox.create(tmp_path, block.doc)
    with holding(block):
        if block.kind == "transcript":
            for step in transcript_steps(block.text):
                ran = box.run_until(["bash", "-c", step.command], step.expected)
                what = f"{block.where}: $ {step.command}"
                assert not ran.timed_out, f"{what}: neither exited nor printed the quoted output"
                assert output_matches(step.expected, ran.output.splitlines()), mismatch(
                    what, step.expected, ran.output
                )
            return
        script = box.work / f"example_{block.line}.{'py' if block.kind == 'python' else 'sh'}"
        script.write_text(block.text, encoding="utf-8")
        if block.kind == "python":
            ran = box.run([sys.executable, script.name])
        else:
            ran = box.run(["bash", "-e", "-o", "pipefail", script.name])
    assert ran.returncode == 0 and not ran.timed_out, f"{block.where}: {ran.describe()}"
    quoted = output_of(block)
    if quoted is not None:
        expected = quoted.text.splitlines()
        assert output_matches(expected, ran.output.splitlines()), mismatch(
            quoted.where, expected, ran.output
        )


@pytest.mark.timeout(240)
@pytest.mark.parametrize("project", sorted(PROJECTS))
def test_pytest_project_from_the_docs_passes(project: str, tmp_path: Path):
    """The docs' conftest.py and test functions, with the rest of the example's files (the
    service under test, its mesh), pass as one pytest session."""
    blocks = project_blocks(project)
    assert blocks, f"no block of the docs is in the pytest project {project!r}"
    box = Sandbox.create(tmp_path, blocks[0].doc)
    folder = box.work / project
    shutil.copytree(
        PROJECTS[project],
        folder,
        ignore=shutil.ignore_patterns("conftest.py", "test_*.py", "__pycache__", ".*"),
    )
    for block in blocks:
        name = (
            block.args[1] if len(block.args) > 1 else f"test_{Path(block.doc).stem}_{block.line}.py"
        )
        path = folder / name
        assert not path.exists(), f"{block.where}: {name} is already a file of {project}"
        path.write_text(f"# {block.where}\n{block.text}", encoding="utf-8")
    ran = box.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=folder, timeout=200
    )
    assert ran.returncode == 0 and not ran.timed_out, (
        f"the docs' pytest project {project!r} ({', '.join(b.where for b in blocks)}): "
        + ran.describe()
    )
