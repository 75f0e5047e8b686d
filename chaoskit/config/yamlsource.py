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
_STR_TAG = _TAG + "str"
_ALLOWED_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
# Tags whose value we keep as the raw text (a timestamp-looking string is still a string to us).
_TEXT_TAGS = {_TAG + t for t in ("timestamp", "binary", "merge")} | {"!"}
# PyYAML's own scalar constructors, called directly rather than through ``construct_object``:
# that method memoises every node it sees in the loader (``constructed_objects``), which is only
# cleared by ``construct_document``, so on our shared loader it kept every scalar of every file
# ever read alive (a leak, and a heap the garbage collector kept walking).
_CONSTRUCTORS: dict[str, Any] = {t: yaml.SafeLoader.yaml_constructors[t] for t in _ALLOWED_TAGS}
_COLLECTION_TAGS = (None, "!", _TAG + "map", _TAG + "seq")
# Event classes as module globals: looked up once per event, faster than ``yaml.X`` each time.
_ScalarEvent = yaml.ScalarEvent
_MappingStartEvent = yaml.MappingStartEvent
_SequenceStartEvent = yaml.SequenceStartEvent
_MappingEndEvent = yaml.MappingEndEvent
_SequenceEndEvent = yaml.SequenceEndEvent
_AliasEvent = yaml.AliasEvent
_DocumentStartEvent = yaml.DocumentStartEvent
_DocumentEndEvent = yaml.DocumentEndEvent
_NOT_CACHED = object()


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


def _scalar(event: yaml.ScalarEvent, loc: Location, plain: dict[str, Any]) -> Any:
    """The value of a scalar event; untagged plain scalars are also remembered in ``plain``.

    :func:`_documents` looks a plain scalar's text up in ``plain`` before calling this. The
    cache is sound because an untagged plain scalar's value depends on its text alone (the
    implicit resolvers look at nothing else) and every value is immutable. It pays because
    configuration repeats itself: the same keys, hosts and numbers recur in every resource.
    """
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:
            return event.value  # quoted scalar: always a string
        tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        value = plain[event.value] = _construct(tag, event.value, loc)
        return value
    return _construct(tag, event.value, loc)


def _construct(tag: str, text: str, loc: Location) -> Any:
    if tag == _STR_TAG or tag in _TEXT_TAGS:
        return text
    if tag not in _ALLOWED_TAGS:
        raise YamlError(
            loc, f"YAML tag {tag.replace(_TAG, '!!')!r} is not allowed (chaoskit loads YAML safely)"
        )
    try:
        return _CONSTRUCTORS[tag](_scalar_constructor, yaml.ScalarNode(tag, text))
    except (ValueError, yaml.YAMLError) as e:
        raise YamlError(loc, f"cannot read {text[:40]!r} as {tag.replace(_TAG, '')}: {e}") from None
    except (KeyError, IndexError, TypeError):  # PyYAML's own messages for these say nothing
        kind = tag.replace(_TAG, "")
        raise YamlError(loc, f"cannot read {text[:40]!r} as {kind}: not a valid {kind}") from None


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


# One open collection's parent: (container or None at the top, its pending key, that key's
# line, the anchor of the collection being built inside it).
_Frame = tuple[YMap | YList | None, str | None, Location | None, str | None]


def _documents(text: str, file: str) -> Iterator[Document]:
    """Build the documents from the parser's events.

    Written for speed as well as safety, since every event of every file passes through here
    (about 480,000 for a 1,000-service mesh): events come straight from the parser's
    ``get_event`` (no generator in between), the open collection and its pending key live in
    locals rather than on top of a stack of tuples, one :class:`Location` is shared by everything
    on a line, and plain scalars are resolved once per distinct text (see :func:`_scalar`).
    """
    locations: dict[int, Location] = {}
    plain: dict[str, Any] = {}
    parents: list[_Frame] = []
    # The collection being filled (None: at the top of a document), the mapping key waiting
    # for its value and that key's line, and the anchor the collection was given.
    current: YMap | YList | None = None
    pending_key: str | None = None
    key_loc: Location | None = None
    anchor: str | None = None
    anchors: dict[str, Any] = {}
    in_progress: set[str] = set()
    nodes = 0
    doc_loc = Location(file, 1)
    doc_index = -1
    root: Any = None
    root_set = False
    value: Any
    parser = _Parser(text)
    try:
        get_event = parser.get_event
        while (event := get_event()) is not None:
            kind = type(event)
            mark = event.start_mark
            if mark is None:
                loc = doc_loc
            elif (loc_or_none := locations.get(mark.line)) is None:
                loc = locations[mark.line] = Location(file, mark.line + 1)
            else:
                loc = loc_or_none
            if kind is _ScalarEvent:
                nodes += 1
                value = _NOT_CACHED
                if event.tag is None and event.implicit[0]:  # the common case, inlined
                    value = plain.get(event.value, _NOT_CACHED)
                if value is _NOT_CACHED:
                    value = _scalar(event, loc, plain)
                if event.anchor:
                    anchors[event.anchor] = value
                value_loc = loc
            elif kind is _MappingStartEvent or kind is _SequenceStartEvent:
                nodes += 1
                if event.tag not in _COLLECTION_TAGS:
                    raise YamlError(
                        loc,
                        f"YAML tag {event.tag.replace(_TAG, '!!')!r} is not allowed "
                        "(chaoskit loads YAML safely)",
                    )
                if len(parents) >= MAX_DEPTH:
                    raise YamlError(loc, f"nested deeper than {MAX_DEPTH} levels")
                coll: YMap | YList = YMap(loc) if kind is _MappingStartEvent else YList(loc)
                if event.anchor:
                    anchors[event.anchor] = coll
                    in_progress.add(event.anchor)
                parents.append((current, pending_key, key_loc, anchor))
                current, pending_key, key_loc, anchor = coll, None, None, event.anchor
                if nodes > MAX_NODES:
                    raise YamlError(loc, f"more than {MAX_NODES} values")
                continue
            elif kind is _MappingEndEvent or kind is _SequenceEndEvent:
                if current is None:  # pragma: no cover - the parser pairs start and end events
                    continue
                value, value_loc = current, current.loc
                in_progress.discard(anchor or "")
                current, pending_key, key_loc, anchor = parents.pop()
            elif kind is _AliasEvent:
                if event.anchor in in_progress:
                    raise YamlError(loc, f"alias *{event.anchor} refers to itself")
                if event.anchor not in anchors:
                    raise YamlError(loc, f"unknown alias *{event.anchor}")
                value, value_loc = anchors[event.anchor], loc
                nodes += _expanded_size(value, {})
                if nodes > MAX_NODES:
                    raise YamlError(loc, f"more than {MAX_NODES} values once aliases are expanded")
            elif kind is _DocumentStartEvent:
                doc_index += 1
                doc_loc = loc
                anchors.clear()
                root, root_set = None, False
                continue
            elif kind is _DocumentEndEvent:
                if root_set and root is not None:
                    yield Document(root, doc_loc, doc_index)
                continue
            else:
                continue  # stream start and end
            # Attach ``value`` (at ``value_loc``) to the open collection.
            if current is None:
                root, root_set = value, True
            elif isinstance(current, YList):
                current.append(value)
                current.item_locs.append(value_loc)
            elif pending_key is None:
                if isinstance(value, YMap | YList):
                    raise YamlError(
                        value_loc, "a mapping key must be a plain value, not a mapping or list"
                    )
                pending_key = value if type(value) is str else _key_text(value)
                key_loc = value_loc
            else:
                if pending_key == "<<" and isinstance(value, YMap):
                    for k, v in value.items():
                        if k not in current:
                            current[k] = v
                            current.key_locs[k] = value.loc_of(k)
                elif pending_key in current:
                    raise YamlError(key_loc or value_loc, f"duplicate key {pending_key!r}")
                else:
                    current[pending_key] = value
                    current.key_locs[pending_key] = value_loc
                pending_key, key_loc = None, None
            if nodes > MAX_NODES:
                raise YamlError(loc, f"more than {MAX_NODES} values")
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = e.problem or e.context or "invalid YAML"
        raise YamlError(Location(file, line), f"YAML syntax error: {problem}") from None
    except yaml.YAMLError as e:
        raise YamlError(Location(file, 1), f"YAML error: {e}") from None
    finally:
        parser.dispose()


def _key_text(value: Any) -> str:
    if value is None:
        return ""
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
