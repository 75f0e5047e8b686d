"""The configuration docs cannot drift from the code.

- Every ```yaml block in docs/*.md is a complete set of resources that validates with no errors
  when layered over the Bookinfo demo mesh (``chaoskit validate experiments/bookinfo/mesh BLOCK``).
- Every ```text block in docs/configuration.md whose first line looks like
  ``FILE:LINE: error|warning|note: ...`` quotes issues that validating the ```yaml-invalid block right
  above it (layered over the same mesh) really produces. ``FILE`` is ignored; ``LINE`` counts
  from the first line inside the yaml-invalid block.

The shell and Python examples run in tests/docs/ (test_runnable.py), and what the docs quote of
``chaoskit --help`` is checked in tests/docs/test_cli_help.py.
"""

from __future__ import annotations

import re

import pytest

from chaoskit.config import load_paths, load_text, validate
from tests.docs.markdown import DOCS, ROOT, Block, read_blocks

BOOKINFO_MESH = ROOT / "experiments" / "bookinfo" / "mesh"

_ISSUE = re.compile(r"^\S*?:(?=\d+: (?:error|warning|note): )")


DOC_FILES = sorted(DOCS.glob("*.md"))
BLOCKS = {p.name: read_blocks(p) for p in DOC_FILES}
YAML_BLOCKS = [b for blocks in BLOCKS.values() for b in blocks if b.lang == "yaml"]


def quoted_issue_pairs() -> list[tuple[Block | None, Block]]:
    """(block right above, text block quoting issues) pairs of configuration.md."""
    pairs: list[tuple[Block | None, Block]] = []
    blocks = BLOCKS.get("configuration.md", [])
    for i, b in enumerate(blocks):
        first = b.text.lstrip("\n").split("\n", 1)[0]
        if b.lang == "text" and _ISSUE.match(first):
            pairs.append((blocks[i - 1] if i > 0 else None, b))
    return pairs


PAIRS = quoted_issue_pairs()


def test_the_docs_exist_and_have_examples():
    names = {p.name for p in DOC_FILES}
    assert {"configuration.md", "istio-compatibility.md"} <= names
    assert YAML_BLOCKS, "no ```yaml blocks found in docs/*.md"


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: b.where)
def test_yaml_block_validates_over_bookinfo(block: Block):
    loaded = load_text(block.text, block.where)
    v = validate([load_paths([BOOKINFO_MESH]), loaded])
    errors = [str(i) for i in v.issues.sorted() if i.severity == "error"]
    assert not errors, (
        f"```yaml block at {block.where} does not validate over {BOOKINFO_MESH.name}/ "
        "(line numbers count from the first line inside the block):\n  " + "\n  ".join(errors)
    )
    assert loaded.resources, f"```yaml block at {block.where} holds no resources"


@pytest.mark.parametrize(("source", "quoted"), PAIRS, ids=[q.where for _, q in PAIRS])
def test_quoted_issues_are_produced(source: Block | None, quoted: Block):
    assert source is not None and source.lang == "yaml-invalid", (
        f"{quoted.where}: quoted FILE:LINE issues need a ```yaml-invalid block right above them"
    )
    label = "example.yaml"
    v = validate([load_paths([BOOKINFO_MESH]), load_text(source.text, label)])
    produced = [str(i).removeprefix(label + ":") for i in v.issues.sorted()]
    expected = [_ISSUE.sub("", line) for line in quoted.text.splitlines() if line.strip()]
    missing = [e for e in expected if e not in produced]
    assert not missing, (
        f"{quoted.where}: quoted issues not produced by the ```yaml-invalid block at "
        f"{source.where}:\n  missing: "
        + "\n  missing: ".join(missing)
        + "\n  produced: "
        + "\n  produced: ".join(produced or ["(nothing)"])
    )
