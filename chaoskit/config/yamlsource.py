"""Safe, position-keeping YAML reading.

Why not ``yaml.safe_load``: every later message must say ``FILE:LINE``, so each mapping and
sequence remembers where its keys and items stood. And why not ``yaml.compose``: libyaml's
composer recurses in C and crashes the interpreter on deeply nested input, and PyYAML's
pure-Python one raises ``RecursionError``. We build the tree ourselves from the parser's event
stream with an explicit stack, a depth limit and a node budget, so hostile input gets a message,
never a crash.

Only the plain YAML types are accepted (str, int, float, bool, null); any other tag
(``!!python/object``, ``!custom``) is refused: nothing in an Istio resource needs one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import yaml

#: Deepest nesting accepted. Real Istio resources stay under 15 levels.
MAX_DEPTH = 64
#: Most scalars + collections in one file, counting every alias expansion.
MAX_NODES = 1_000_000
#: Largest file read, in bytes.
MAX_FILE_BYTES = 16 * 1024 * 1024

_Parser: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver = yaml.SafeLoader("")
_scalar_constructor = yaml.SafeLoader("")

_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
# Tags whose value we keep as the raw text (a timestamp-looking string is still a string to us).
_TEXT_TAGS = {_TAG + "timestamp", _TAG + "binary", _TAG + "merge", "!"}


@dataclasses.dataclass(frozen=True, slots=True)
class Location:
    """Where something stood in a YAML file (1-based line)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class YamlError(Exception):
    """A file that cannot be read as YAML at all (syntax, size, depth, forbidden tags)."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class YMap(dict[str, Any]):
    """A YAML mapping that remembers its own line and the line of each value."""

    __slots__ = ("key_locs", "loc")

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.key_locs: dict[str, Location] = {}

    def loc_of(self, key: str) -> Location:
        return self.key_locs.get(key, self.loc)


class YList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item."""

    __slots__ = ("item_locs", "loc")

    def __init__(self, loc: Location) -> None:
        super().__init__()
        self.loc = loc
        self.item_locs: list[Location] = []

    def loc_of(self, index: int) -> Location:
        return self.item_locs[index] if 0 <= index < len(self.item_locs) else self.loc


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """One ``---`` document of a file: its top-level value and where it starts."""

    value: Any
    loc: Location
    index: int


def _scalar(event: yaml.ScalarEvent, loc: Location) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        if event.implicit[0]:
            tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        else:
            return event.value  # quoted scalar: always a string
    if tag in _TEXT_TAGS:
        return event.value
    if tag not in _ALLOWED_TAGS:
        raise YamlError(
            loc, f"YAML tag {tag.replace(_TAG, '!!')!r} is not allowed (chaoskit loads YAML safely)"
        )
    node = yaml.ScalarNode(tag, event.value)
    try:
        return _scalar_constructor.construct_object(node)
    except (ValueError, yaml.YAMLError) as e:
        raise YamlError(
            loc, f"cannot read {event.value[:40]!r} as {tag.replace(_TAG, '')}: {e}"
        ) from None


def _expanded_size(value: Any, memo: dict[int, int]) -> int:
    """Node count with aliases expanded, so a 'billion laughs' file is refused cheaply."""
    if not isinstance(value, YMap | YList):
        return 1
    key = id(value)
    if key not in memo:
        memo[key] = 1  # provisional, guards against self-reference
        children = value.values() if isinstance(value, YMap) else value
        memo[key] = 1 + sum(_expanded_size(c, memo) for c in children)
    return memo[key]


def _documents(text: str, file: str) -> Iterator[Document]:
    # (container, key waiting for its value, that key's line)
    stack: list[tuple[YMap | YList, str | None, Location | None]] = []
    open_anchors: list[str | None] = []
    anchors: dict[str, Any] = {}
    in_progress: set[str] = set()
    nodes = 0
    doc_loc = Location(file, 1)
    doc_index = -1
    root: Any = None
    root_set = False

    def attach(value: Any, loc: Location) -> None:
        nonlocal root, root_set
        if not stack:
            root, root_set = value, True
            return
        container, pending_key, _ = stack[-1]
        if isinstance(container, YList):
            container.append(value)
            container.item_locs.append(loc)
            return
        if pending_key is None:
            if isinstance(value, YMap | YList):
                raise YamlError(loc, "a mapping key must be a plain value, not a mapping or list")
            stack[-1] = (container, "" if value is None else _key_text(value), loc)
            return
        if pending_key == "<<" and isinstance(value, YMap):
            for k, v in value.items():
                if k not in container:
                    container[k] = v
                    container.key_locs[k] = value.loc_of(k)
        elif pending_key in container:
            raise YamlError(stack[-1][2] or loc, f"duplicate key {pending_key!r}")
        else:
            container[pending_key] = value
            container.key_locs[pending_key] = loc
        stack[-1] = (container, None, None)

    try:
        for event in yaml.parse(text, Loader=_Parser):
            mark = getattr(event, "start_mark", None)
            loc = Location(file, mark.line + 1) if mark is not None else doc_loc
            if isinstance(event, yaml.DocumentStartEvent):
                doc_index += 1
                doc_loc = loc
                anchors.clear()
                root, root_set = None, False
            elif isinstance(event, yaml.DocumentEndEvent):
                if root_set and root is not None:
                    yield Document(root, doc_loc, doc_index)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor in in_progress:
                    raise YamlError(loc, f"alias *{event.anchor} refers to itself")
                if event.anchor not in anchors:
                    raise YamlError(loc, f"unknown alias *{event.anchor}")
                value = anchors[event.anchor]
                nodes += _expanded_size(value, {})
                if nodes > MAX_NODES:
                    raise YamlError(loc, f"more than {MAX_NODES} values once aliases are expanded")
                attach(value, loc)
            elif isinstance(event, yaml.ScalarEvent):
                nodes += 1
                value = _scalar(event, loc)
                if event.anchor:
                    anchors[event.anchor] = value
                attach(value, loc)
            elif isinstance(event, yaml.CollectionStartEvent):
                nodes += 1
                if event.tag not in (None, "!", _TAG + "map", _TAG + "seq"):
                    raise YamlError(
                        loc,
                        f"YAML tag {event.tag.replace(_TAG, '!!')!r} is not allowed "
                        "(chaoskit loads YAML safely)",
                    )
                if len(stack) >= MAX_DEPTH:
                    raise YamlError(loc, f"nested deeper than {MAX_DEPTH} levels")
                coll: YMap | YList = (
                    YMap(loc) if isinstance(event, yaml.MappingStartEvent) else YList(loc)
                )
                if event.anchor:
                    anchors[event.anchor] = coll
                    in_progress.add(event.anchor)
                open_anchors.append(event.anchor)
                stack.append((coll, None, None))
            elif isinstance(event, yaml.CollectionEndEvent):
                coll, _, _ = stack.pop()
                in_progress.discard(open_anchors.pop() or "")
                attach(coll, coll.loc)
            if nodes > MAX_NODES:
                raise YamlError(loc, f"more than {MAX_NODES} values")
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = e.problem or e.context or "invalid YAML"
        raise YamlError(Location(file, line), f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as e:
        raise YamlError(Location(file, 1), f"YAML error: {e}") from None


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_documents(text: str, file: str = "<string>") -> list[Document]:
    """All non-empty documents of ``text``, or :class:`YamlError` for the first problem."""
    if len(text) > MAX_FILE_BYTES:
        raise YamlError(
            Location(file, 1), f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        )
    return list(_documents(text, file))


def read_documents(path: str) -> list[Document]:
    """Read a file and parse it; unreadable files become :class:`YamlError` too."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise YamlError(Location(path, 1), f"cannot read file: {e.strerror or e}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise YamlError(
            Location(path, 1), f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YamlError(
            Location(path, 1), f"not UTF-8 text: {e.reason} at byte {e.start}"
        ) from None
    return parse_documents(text, path)
