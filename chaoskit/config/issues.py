"""Problems found in configuration, each pinned to a file, a line and a field path.

Validation never stops at the first problem: parsers append :class:`Issue` values to an
:class:`Issues` list and carry on, so ``chaoskit validate`` can show everything at once.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator

from chaoskit.config.yamlsource import Location


class Severity(enum.StrEnum):
    #: The resource is invalid: Istio would reject it, or chaoskit cannot enforce it.
    ERROR = "error"
    #: Legal, but very likely not what the author meant.
    WARNING = "warning"


@dataclasses.dataclass(frozen=True, slots=True)
class Issue:
    """One problem: ``FILE:LINE: severity: Kind/namespace/name: field.path: message``."""

    severity: Severity
    location: Location
    resource: str
    path: str
    message: str

    def __str__(self) -> str:
        parts = [str(self.location), str(self.severity)]
        if self.resource:
            parts.append(self.resource)
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": str(self.severity),
            "file": self.location.file,
            "line": self.location.line,
            "resource": self.resource,
            "path": self.path,
            "message": self.message,
        }


class Issues:
    """An append-only list of issues with helpers to add them."""

    def __init__(self, items: Iterable[Issue] = ()) -> None:
        self._items: list[Issue] = list(items)

    def add(self, issue: Issue) -> None:
        self._items.append(issue)

    def error(self, location: Location, resource: str, path: str, message: str) -> None:
        self._items.append(Issue(Severity.ERROR, location, resource, path, message))

    def warning(self, location: Location, resource: str, path: str, message: str) -> None:
        self._items.append(Issue(Severity.WARNING, location, resource, path, message))

    def extend(self, other: Iterable[Issue]) -> None:
        self._items.extend(other)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self._items if i.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self._items if i.severity is Severity.WARNING]

    def sorted(self) -> list[Issue]:
        """In file order, errors before warnings on the same line."""
        return sorted(
            self._items,
            key=lambda i: (i.location.file, i.location.line, i.severity is Severity.WARNING),
        )

    def __iter__(self) -> Iterator[Issue]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)
