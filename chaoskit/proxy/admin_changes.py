"""The runtime layer of the admin API: resources applied over HTTP, kept apart from the files.

Pure logic (no sockets, no mitmproxy), so it is tested on its own. kubectl semantics: the last
resource applied wins per (kind, namespace, name); each change answers one line per resource
as ``kubectl apply`` does (``virtualservice/reviews created``, ``configured``, ``unchanged``,
``deleted``). The layer sits over the files' configuration: a file reload re-applies it on top.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chaoskit.config.issues import Issues
from chaoskit.config.loader import LoadResult
from chaoskit.config.resource import Resource
from chaoskit.config.yamlsource import Location

Key = tuple[str, str, str]


def key_of(r: Resource) -> Key:
    return (r.KIND, r.namespace, r.name)


def label(r: Resource) -> str:
    """``virtualservice/reviews``: how ``kubectl apply`` names an object in its output."""
    return f"{r.KIND.lower()}/{r.name}"


def content(value: Any) -> Any:
    """A resource's content without where it was written (two applies of the same YAML at
    different lines are ``unchanged``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(
            (f.name, content(getattr(value, f.name)))
            for f in dataclasses.fields(value)
            if not isinstance(getattr(value, f.name), Location)
        )
    if isinstance(value, dict):
        return tuple(sorted((str(k), content(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(content(v) for v in value)
    if isinstance(value, set | frozenset):
        return tuple(sorted(repr(content(v)) for v in value))
    if hasattr(value, "pattern"):  # compiled regex
        return ("re", value.pattern)
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class RuntimeLayer:
    """Resources applied at runtime, in application order; immutable (a change makes a new
    layer, swapped in only once the whole configuration validated)."""

    resources: tuple[Resource, ...] = ()

    def applied(self, new: Sequence[Resource]) -> tuple[RuntimeLayer, list[str]]:
        by_key = {key_of(r): r for r in self.resources}
        lines: list[str] = []
        for r in new:
            old = by_key.pop(key_of(r), None)
            if old is None:
                verb = "created"
            elif content(old) == content(r):
                verb = "unchanged"
            else:
                verb = "configured"
            by_key[key_of(r)] = r  # re-inserted: the later application takes the later place
            lines.append(f"{label(r)} {verb}")
        return RuntimeLayer(tuple(by_key.values())), lines

    def deleted(self, gone: Sequence[Resource]) -> tuple[RuntimeLayer, list[str], list[str]]:
        """Remove ``gone`` (matched by kind/namespace/name); returns the new layer, the
        ``deleted`` lines and a ``not found`` message for each one that was not applied
        (resources from the files cannot be deleted over the API: edit the file)."""
        by_key = {key_of(r): r for r in self.resources}
        lines: list[str] = []
        missing: list[str] = []
        for r in gone:
            if by_key.pop(key_of(r), None) is None:
                missing.append(f'{r.KIND.lower()} "{r.name}" not found in the runtime layer')
            else:
                lines.append(f"{label(r)} deleted")
        return RuntimeLayer(tuple(by_key.values())), lines, missing

    def results(self) -> list[LoadResult]:
        """The layer as load results, to validate over the files' configuration."""
        if not self.resources:
            return []
        files = tuple(dict.fromkeys(r.location.file for r in self.resources))
        return [LoadResult(self.resources, Issues(), files)]
