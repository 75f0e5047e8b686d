"""Typed, path-aware reading of one YAML mapping.

Every parser in :mod:`chaoskit.config` reads its resource through :class:`Fields`. Each
accessor checks the type, records an :class:`~chaoskit.config.issues.Issue` with the file, line
and field path when the value is wrong, and returns ``None`` so parsing carries on. Fields that
no accessor touched are reported by :meth:`Fields.done` as unknown, with a "did you mean" when a
known name is close, so a typo such as ``perTrytimeout`` never silently disables a policy.
"""

from __future__ import annotations

import builtins
import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from chaoskit.config.durations import check_istio_duration, check_percentage, parse_duration
from chaoskit.config.issues import Issues
from chaoskit.config.yamlsource import Location, YList, YMap

#: Largest value of the int32/uint32 fields Istio declares.
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1


@dataclasses.dataclass(slots=True)
class Context:
    """What every issue of one resource shares: where to put it and which resource it is about."""

    issues: Issues
    resource: str
    namespace: str = "default"


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean "x"?)`` when a known name is close to ``name``, else ``""``."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f'; did you mean "{by_lower[close[0]]}"?' if close else ""


class Fields:
    """Accessors over one mapping at ``path`` inside a resource."""

    __slots__ = ("ctx", "data", "path", "seen")

    def __init__(self, data: YMap, path: builtins.str, ctx: Context) -> None:
        self.data = data
        self.path = path
        self.ctx = ctx
        self.seen: set[builtins.str] = set()

    # -- construction -------------------------------------------------------------------

    @classmethod
    def of(cls, value: Any, path: builtins.str, ctx: Context, loc: Location) -> Fields | None:
        """Wrap ``value`` if it is a mapping, else record an issue and return ``None``."""
        if isinstance(value, YMap):
            return cls(value, path, ctx)
        ctx.issues.error(loc, ctx.resource, path, f"must be a mapping, not {type_name(value)}")
        return None

    # -- paths, locations, issues -------------------------------------------------------

    def sub(self, key: builtins.str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def loc(self, key: builtins.str | None = None) -> Location:
        return self.data.loc if key is None else self.data.loc_of(key)

    def error(self, key: builtins.str | None, message: builtins.str) -> None:
        self.ctx.issues.error(
            self.loc(key), self.ctx.resource, self.sub(key) if key else self.path, message
        )

    def warn(
        self, key: builtins.str | None, message: builtins.str, *, code: builtins.str = ""
    ) -> None:
        self.ctx.issues.warning(
            self.loc(key),
            self.ctx.resource,
            self.sub(key) if key else self.path,
            message,
            code=code,
        )

    def has(self, key: builtins.str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: builtins.str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def accept(self, *keys: builtins.str) -> None:
        """Mark fields as known without reading them (Istio fields chaoskit does not enforce)."""
        self.seen.update(keys)

    # The accessors below are the hottest code of loading (hundreds of thousands of calls for
    # a large mesh), so they inline :meth:`raw` instead of calling it.

    def _get(self, key: builtins.str, required: builtins.bool) -> Any:
        self.seen.add(key)
        value = self.data.get(key)
        if value is None and required:
            self._missing(key)
        return value

    def _missing(self, key: builtins.str) -> None:
        if key in self.data:
            self.error(key, "must not be null")
        else:
            self.error(None, f'"{key}" is required')

    def _wrong(self, key: builtins.str, want: builtins.str, value: Any) -> None:
        self.error(key, f"must be {want}, not {type_name(value)} {_short(value)}".rstrip())

    # -- scalars --------------------------------------------------------------------------

    def str(self, key: builtins.str, *, required: builtins.bool = False) -> builtins.str | None:
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            if required:
                self._missing(key)
            return None
        if not isinstance(value, str):
            self._wrong(key, "a string", value)
            return None
        if required and not value:
            self.error(key, "must not be empty")
            return None
        return value

    def int(
        self,
        key: builtins.str,
        *,
        required: builtins.bool = False,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = INT32_MAX,
    ) -> builtins.int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self._wrong(key, "an integer", value)
            return None
        if minimum is not None and value < minimum:
            self.error(key, f"{value} is less than {minimum}")
            return None
        if maximum is not None and value > maximum:
            self.error(key, f"{_short(value)} is larger than {maximum}")
            return None
        return value

    def number(self, key: builtins.str, *, required: builtins.bool = False) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong(key, "a number", value)
            return None
        try:
            number = float(value)
        except OverflowError:
            self.error(key, "number is too large")
            return None
        if not math.isfinite(number):
            self.error(key, "must be a finite number")
            return None
        return number

    def bool(self, key: builtins.str, *, required: builtins.bool = False) -> builtins.bool | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, bool):
            self._wrong(key, "true or false", value)
            return None
        return value

    def duration(
        self,
        key: builtins.str,
        *,
        required: builtins.bool = False,
        allow_zero: builtins.bool = False,
        istio_rules: builtins.bool = True,
    ) -> float | None:
        """A Go-style duration in seconds; Istio's ">= 1ms, whole ms" rule unless disabled."""
        value = self._get(key, required)
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            self.error(key, str(e))
            return None
        if istio_rules and (problem := check_istio_duration(seconds, allow_zero=allow_zero)):
            self.error(key, problem)
            return None
        return seconds

    def enum(
        self, key: builtins.str, choices: Iterable[builtins.str], *, required: builtins.bool = False
    ) -> builtins.str | None:
        value = self.str(key, required=required)
        if value is None:
            return None
        options = list(choices)
        if value not in options:
            hint = did_you_mean(value, options)
            self.error(key, f'"{value}" is not one of {", ".join(options)}{hint}')
            return None
        return value

    def percent(self, key: builtins.str) -> float | None:
        """Istio's ``Percent`` message: ``{value: <0..100>}``."""
        obj = self.obj(key)
        if obj is None:
            return None
        value = obj.number("value")
        obj.done()
        if value is None:
            return 0.0 if not obj.has("value") else None
        if problem := check_percentage(value):
            obj.error("value", problem)
            return None
        return value

    # -- collections ----------------------------------------------------------------------

    def obj(self, key: builtins.str, *, required: builtins.bool = False) -> Fields | None:
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            if required:
                self._missing(key)
            return None
        return Fields.of(value, self.sub(key), self.ctx, self.loc(key))

    def list(
        self, key: builtins.str, *, required: builtins.bool = False
    ) -> builtins.list[tuple[builtins.str, Any, Location]]:
        """Items as ``(path, value, location)``; ``[]`` when absent or not a list."""
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            if required:
                self._missing(key)
            return []
        if not isinstance(value, YList):
            self._wrong(key, "a list", value)
            return []
        base = self.sub(key)
        locs = value.item_locs
        if len(locs) == len(value):  # always, for parsed YAML: skip the per-item loc_of call
            return [(f"{base}[{i}]", item, locs[i]) for i, item in enumerate(value)]
        return [(f"{base}[{i}]", item, value.loc_of(i)) for i, item in enumerate(value)]

    def objs(self, key: builtins.str, *, required: builtins.bool = False) -> builtins.list[Fields]:
        out = []
        for path, item, loc in self.list(key, required=required):
            f = Fields.of(item, path, self.ctx, loc)
            if f is not None:
                out.append(f)
        return out

    def str_list(
        self, key: builtins.str, *, required: builtins.bool = False
    ) -> tuple[builtins.str, ...]:
        out = []
        for path, item, loc in self.list(key, required=required):
            if isinstance(item, str):
                out.append(item)
            else:
                self.ctx.issues.error(
                    loc, self.ctx.resource, path, f"must be a string, not {type_name(item)}"
                )
        return tuple(out)

    def str_map(
        self, key: builtins.str, *, scalars_as_text: builtins.bool = False
    ) -> dict[builtins.str, builtins.str]:
        """A map of strings (labels, headers). Numbers are refused unless ``scalars_as_text``."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, YMap):
            self._wrong(key, "a mapping", value)
            return {}
        out: dict[builtins.str, builtins.str] = {}
        for k, v in value.items():
            if isinstance(v, str):
                out[k] = v
            elif scalars_as_text and isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = str(v)
            else:
                hint = " (quote it)" if isinstance(v, int | float | bool) else ""
                self.ctx.issues.error(
                    value.loc_of(k),
                    self.ctx.resource,
                    f"{self.sub(key)}.{k}",
                    f"must be a string, not {type_name(v)}{hint}",
                )
        return out

    def obj_map(self, key: builtins.str) -> dict[builtins.str, Fields]:
        """A map whose values are mappings (``headers: {name: StringMatch}``)."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, YMap):
            self._wrong(key, "a mapping", value)
            return {}
        out = {}
        for k, v in value.items():
            f = Fields.of(
                v if v is not None else YMap(value.loc_of(k)),
                f"{self.sub(key)}.{k}",
                self.ctx,
                value.loc_of(k),
            )
            if f is not None:
                out[k] = f
        return out

    # -- completion -----------------------------------------------------------------------

    def done(self, also_known: Iterable[builtins.str] = ()) -> None:
        """Report every field nobody read as unknown."""
        known = self.seen | set(also_known) if also_known else self.seen
        for key in self.data:
            if key not in known:
                self.error(key, f'unknown field "{key}"{did_you_mean(key, known)}')


def _short(value: Any) -> str:
    text = repr(value)
    return f"({text[:37]}...)" if len(text) > 40 else f"({text})"
