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
    #: Accepted and loaded, but a part of it is not emulated (say so rather than stay silent).
    NOTE = "note"


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTE: 2}


@dataclasses.dataclass(frozen=True, slots=True)
class Issue:
    """One problem: ``FILE:LINE: severity: Kind/namespace/name: field.path: message [CODE]``.

    ``code`` is the ``istioctl analyze`` message code (``IST0101`` …, from istio/istio
    ``pkg/config/analysis/msg/messages.yaml``) when Istio's analyzers report the same finding, so a
    user can look it up in Istio's docs; empty for chaoskit's own checks.
    """

    severity: Severity
    location: Location
    resource: str
    path: str
    message: str
    code: str = ""

    def __str__(self) -> str:
        parts = [str(self.location), str(self.severity)]
        if self.resource:
            parts.append(self.resource)
        if self.path:
            parts.append(self.path)
        parts.append(f"{self.message} [{self.code}]" if self.code else self.message)
        return ": ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": str(self.severity),
            "file": self.location.file,
            "line": self.location.line,
            "resource": self.resource,
            "path": self.path,
            "message": self.message,
            "code": self.code or None,
        }


class Issues:
    """An append-only list of issues with helpers to add them."""

    def __init__(self, items: Iterable[Issue] = ()) -> None:
        self._items: list[Issue] = list(items)

    def add(self, issue: Issue) -> None:
        self._items.append(issue)

    def error(
        self, location: Location, resource: str, path: str, message: str, *, code: str = ""
    ) -> None:
        self._items.append(Issue(Severity.ERROR, location, resource, path, message, code))

    def warning(
        self, location: Location, resource: str, path: str, message: str, *, code: str = ""
    ) -> None:
        self._items.append(Issue(Severity.WARNING, location, resource, path, message, code))

    def note(
        self, location: Location, resource: str, path: str, message: str, *, code: str = ""
    ) -> None:
        self._items.append(Issue(Severity.NOTE, location, resource, path, message, code))

    def extend(self, other: Iterable[Issue]) -> None:
        self._items.extend(other)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self._items if i.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self._items if i.severity is Severity.WARNING]

    @property
    def notes(self) -> list[Issue]:
        return [i for i in self._items if i.severity is Severity.NOTE]

    def sorted(self) -> list[Issue]:
        """In file order; on the same line errors, then warnings, then notes."""
        return sorted(
            self._items, key=lambda i: (i.location.file, i.location.line, _RANK[i.severity])
        )

    def __iter__(self) -> Iterator[Issue]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)
