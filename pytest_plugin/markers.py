"""``@pytest.mark.chaos(*sources, seed=None)`` → one frozen :class:`ChaosMark` per test.

As pytest does for ``skipif``/``xfail``: one function turns the raw marks into a value, the value
goes in the item's stash, and hooks and fixtures only ever see the value. Bad arguments end the
test's setup with a message naming the argument, never with a traceback into the plugin.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

MARKER_NAME = "chaos"
#: What ``pytest --markers`` prints; docs/pytest.md quotes it word for word.
MARKER_HELP = (
    "chaos(*sources, seed=None): apply mesh config (paths, YAML, dicts) for this test; "
    'seed reseeds decisions. Example: @pytest.mark.chaos("mesh/faults.yaml")'
)
_KEYWORDS = ("seed",)


@dataclasses.dataclass(frozen=True)
class ChaosMark:
    """The config and seed that ``@pytest.mark.chaos`` marks ask for, outermost mark first."""

    #: Sources to apply in order (module marks, then class marks, then the function's own);
    #: relative paths are already resolved.
    sources: tuple[Any, ...] = ()
    #: The seed for this test's decisions, or ``None`` to derive it from the session seed.
    seed: int | None = None


chaos_mark_key = pytest.StashKey[ChaosMark | None]()


def looks_like_yaml(text: str) -> bool:
    """YAML text rather than a path (the rule :mod:`chaoskit.sources` applies)."""
    return "\n" in text or text.lstrip().startswith(("apiVersion", "{", "-", "kind"))


def resolve_path(source: Any, search: Sequence[Path]) -> Any:
    """A relative path that exists under one of ``search`` (in order) becomes absolute; anything
    else comes back unchanged."""
    if isinstance(source, str) and looks_like_yaml(source):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = Path(source)
    if path.is_absolute():
        return source
    for base in search:
        candidate = base / path
        if candidate.exists():
            return str(candidate)
    return source


def _problem(source: Any, search: Sequence[Path]) -> str | None:
    """Why ``source`` cannot be a config source, or ``None``."""
    # only marked tests get here: a run without chaos marks never imports chaoskit's config
    from chaoskit.config.resource import Resource  # noqa: PLC0415

    if isinstance(source, (Resource, Mapping)):
        return None
    if isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and looks_like_yaml(source):
            return None
        if not Path(resolve_path(source, search)).exists():
            where = ", ".join(str(p) for p in search) or "the current directory"
            return f"no such file or folder {os.fspath(source)!r} (looked in {where})"
        return None
    if isinstance(source, (list, tuple)):
        for inner in source:
            if problem := _problem(inner, search):
                return problem
        return None
    return (
        f"{source!r} ({type(source).__name__}) is not a config source: "
        "pass a path, YAML text, a dict or a resource"
    )


def _resolve_all(source: Any, search: Sequence[Path]) -> Any:
    if isinstance(source, (list, tuple)):
        return [_resolve_all(s, search) for s in source]
    return resolve_path(source, search)


def search_dirs(item: pytest.Item) -> list[Path]:
    """Where relative paths are looked up: the test file's folder, then the rootdir."""
    dirs = [Path(item.path).parent, item.config.rootpath]
    return list(dict.fromkeys(dirs))


def _fail(item: pytest.Item, lines: Iterable[str]) -> None:
    __tracebackhide__ = True
    text = "\n  ".join(lines)
    pytest.fail(f"invalid @pytest.mark.{MARKER_NAME} on {item.nodeid}:\n  {text}", pytrace=False)


def evaluate_chaos_marks(item: pytest.Item) -> ChaosMark | None:
    """The test's :class:`ChaosMark`, or ``None`` when it has no ``chaos`` mark.

    Several marks (module ``pytestmark``, class, function) combine: their sources apply from the
    outermost to the innermost, and the innermost ``seed`` given wins.
    """
    marks = list(item.iter_markers(name=MARKER_NAME))
    if not marks:
        return None
    search = search_dirs(item)
    sources: list[Any] = []
    seed: int | None = None
    problems: list[str] = []
    for mark in reversed(marks):  # iter_markers yields the closest mark first
        for key in mark.kwargs:
            if key not in _KEYWORDS:
                hint = difflib.get_close_matches(key, _KEYWORDS, n=1)
                problems.append(
                    f"unexpected keyword argument {key!r}"
                    + (
                        f"; did you mean {hint[0]!r}?"
                        if hint
                        else f" (it takes: {', '.join(_KEYWORDS)})"
                    )
                )
        if "seed" in mark.kwargs and mark.kwargs["seed"] is not None:
            value = mark.kwargs["seed"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"seed must be a whole number >= 0, not {value!r}")
            else:
                seed = value
        for i, source in enumerate(mark.args, start=1):
            if problem := _problem(source, search):
                problems.append(f"argument {i}: {problem}")
            else:
                sources.append(_resolve_all(source, search))
    if problems:
        _fail(item, problems)
    return ChaosMark(tuple(sources), seed)
