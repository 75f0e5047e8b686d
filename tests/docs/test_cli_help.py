"""What the docs quote of ``chaoskit ... --help`` is what the commands print.

- A text block that starts with ``usage: chaoskit SUBCOMMAND`` is that subcommand's ``--help``,
  word for word (line wrapping aside: it depends on the terminal's width).
- A flag quoted with its argument in inline code (`` `--seed SEED` ``, `` `--format {text,json}` ``)
  uses the metavar ``--help`` shows for it. Example values (`` `--gateway-port 80=0` ``) are not
  metavars and are not checked; neither are flags chaoskit does not have (pytest's, mitmdump's),
  nor performance.md, whose flags are ``python -m bench``'s. One alternative of a metavar names
  that case (`` `--access-log FILE` `` for ``FILE|-``).
"""

from __future__ import annotations

import argparse
import re

import pytest

from chaoskit.cli import build_parser
from tests.docs.markdown import ALL_BLOCKS, DOCS, PAGES

USAGE = [b for b in ALL_BLOCKS if b.lang == "text" and b.text.startswith("usage: chaoskit ")]
#: an inline code span holding a long flag and one argument
_QUOTED_FLAG = re.compile(r"`(--[a-z][a-z-]*)[ =]([^`\s]+)`")
#: arguments that are metavars, not example values: FILE, HOST:PORT, FILE|-, {text,json},
#: text|json, [PORT]
_METAVAR = re.compile(
    r"^([A-Z][A-Z0-9_.:=-]*(\\?\|[A-Z-]+)*|\{[^}]+\}|\[[^\]]+\]|[a-z]+(\\?\|[a-z]+)+)$"
)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def normalized(text: str) -> str:
    """Help text with its whitespace collapsed, and Python 3.13's ``-f, --file PATH`` style
    for an option with a short and a long name (3.12 writes ``-f PATH, --file PATH``)."""
    text = re.sub(r"(-\w) ([^\s,]+), (--[\w-]+) \2\b", r"\1, \3 \2", text)
    return " ".join(text.split())


@pytest.fixture
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width


def test_the_docs_quote_the_usage_of_every_subcommand():
    quoted = {b.text.split()[2] for b in USAGE}
    assert quoted >= set(subcommands()) - {"delete"}, sorted(set(subcommands()) - quoted)


@pytest.mark.parametrize("block", USAGE, ids=lambda b: b.where)
def test_quoted_help_is_what_the_command_prints(block, wide_terminal):
    name = block.text.split()[2]
    real = subcommands()[name].format_help()
    assert normalized(block.text) == normalized(real), (
        f"{block.where} quotes `chaoskit {name} --help`, which prints:\n{real}"
    )


def real_metavars() -> dict[str, set[str]]:
    """Every long flag of every subcommand → the argument forms ``--help`` shows for it."""
    forms: dict[str, set[str]] = {}
    for parser in subcommands().values():
        formatter = parser._get_formatter()
        for action in parser._actions:
            for option in action.option_strings:
                if not option.startswith("--") or action.nargs == 0:
                    continue
                shown = formatter._format_args(
                    action, formatter._get_default_metavar_for_optional(action)
                )
                forms.setdefault(option, set()).add(shown)
    return forms


def agrees(quoted: str, shown: set[str]) -> bool:
    """``text|json`` (how prose writes choices) is argparse's ``{text,json}``; ``FILE`` is one
    alternative of ``FILE|-``."""
    quoted = quoted.replace("\\|", "|")
    if re.fullmatch(r"[a-z]+(\|[a-z]+)+", quoted):
        quoted = "{" + quoted.replace("|", ",") + "}"
    return quoted in shown or any(quoted in metavar.split("|") for metavar in shown)


def quoted_flags() -> list[tuple[str, str, str]]:
    out = []
    for page in PAGES:
        if page == DOCS / "performance.md":
            continue
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            for flag, arg in _QUOTED_FLAG.findall(line):
                if _METAVAR.match(arg):
                    out.append((f"{page.name}:{number}", flag, arg))
    return out


def test_flags_quoted_in_the_docs_use_the_real_metavars():
    real = real_metavars()
    wrong = [
        f"{where}: `{flag} {arg}`, but --help shows {' or '.join(sorted(real[flag]))}"
        for where, flag, arg in quoted_flags()
        if flag in real and not agrees(arg, real[flag])
    ]
    assert not wrong, "\n".join(wrong)
    assert any(flag in real for _, flag, _ in quoted_flags()), "no quoted chaoskit flag found"
