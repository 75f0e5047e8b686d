"""The runtime layer of the admin API: resources applied over HTTP, kept apart from the files.

Pure logic (no sockets, no mitmproxy), so it is tested on its own. kubectl semantics: the last
resource applied wins per (kind, namespace, name); each change answers one line per resource
as ``kubectl apply`` does (``virtualservice/reviews created``, ``configured``, ``unchanged``,
``deleted``). The layer sits over the files' configuration: a file reload re-applies it on top.

The layer also holds the named faults of ``/faults`` (:mod:`chaoskit.config.named_faults`): they
become resources only when the layer is laid over a configuration (:meth:`RuntimeLayer.results`),
because a route fault is spliced into the VirtualService the configuration has *then* — after a
file reload, into the reloaded one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chaoskit.config.fault_splice import Target, materialize
from chaoskit.config.issues import Issues
from chaoskit.config.loader import LoadResult
from chaoskit.config.named_faults import Fault
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
    #: named faults (``/faults``), in the order they were added
    faults: tuple[Fault, ...] = ()

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
        return dataclasses.replace(self, resources=tuple(by_key.values())), lines

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
        return dataclasses.replace(self, resources=tuple(by_key.values())), lines, missing

    def fault(self, name: str) -> Fault | None:
        return next((f for f in self.faults if f.name == name), None)

    def with_fault(self, fault: Fault) -> tuple[RuntimeLayer, str]:
        """Add ``fault`` or replace the one of its name (which keeps its place in the order);
        ``created``, ``configured`` or ``unchanged``."""
        old = self.fault(fault.name)
        if old is None:
            return dataclasses.replace(self, faults=(*self.faults, fault)), "created"
        if old.definition == fault.definition:
            return self, "unchanged"
        faults = tuple(fault if f.name == fault.name else f for f in self.faults)
        return dataclasses.replace(self, faults=faults), "configured"

    def without_faults(self, *names: str) -> RuntimeLayer:
        """The layer without the named faults (all of them with no name)."""
        kept = tuple(f for f in self.faults if names and f.name not in names)
        return dataclasses.replace(self, faults=kept)

    def targets(self, base: Sequence[LoadResult]) -> dict[str, list[Target]]:
        """What each fault is active in, laid over ``base``."""
        return materialize(self.faults, self._under_faults(base))[1]

    def _under_faults(self, base: Sequence[LoadResult]) -> list[Resource]:
        return [*(r for b in base for r in b.resources), *self.resources]

    def results(self, base: Sequence[LoadResult] = ()) -> list[LoadResult]:
        """The layer as load results, to validate over ``base`` (the files' configuration)."""
        out: list[LoadResult] = []
        if self.resources:
            files = tuple(dict.fromkeys(r.location.file for r in self.resources))
            out.append(LoadResult(self.resources, Issues(), files))
        if self.faults:
            made, _ = materialize(self.faults, self._under_faults(base))
            files = tuple(dict.fromkeys(f.location.file for f in self.faults))
            out.append(LoadResult(tuple(made), Issues(), files))
        return out
