"""Header operations of a VirtualService rule, as an ordered plan Envoy would execute.

Istio translates ``headers.request`` / ``headers.response`` of a rule and of each destination
into Envoy ``headers_to_remove`` + ``headers_to_add`` (``route.go``
``TranslateHeadersOperations``). Envoy evaluates one level at a time: the level's removals
first, then its additions in order — ``set`` entries (sorted by name, *overwrite or add*) before
``add`` entries (sorted by name, *append*). A :class:`HeaderPlan` is that sequence flattened;
:func:`compose` orders the levels as Envoy does (``route.go`` ``processDestination`` and
``processWeightedDestination``; Envoy ``configuration/http/http_conn_man/headers.rst``):

- one destination: Istio appends the destination's operations after the rule's, so a
  destination ``set`` wins;
- weighted destinations: the destination's operations sit on the weighted cluster, which Envoy
  applies *before* the route's, so a rule-level ``set`` of the same header wins.

``host`` / ``:authority`` in ``set``/``add`` is an authority rewrite, not a header operation
(:func:`authority_of`); other pseudo-headers and ``host`` are never touched.

Values: ``%%`` is a literal ``%``. Supported Envoy variables (from a :class:`HeaderContext`):
``%HOSTNAME%``, ``%DOWNSTREAM_REMOTE_ADDRESS%``, ``%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%``,
``%PROTOCOL%``, ``%START_TIME%`` (no format argument; ISO-8601 UTC with milliseconds) and
``%REQ(name)%``. Any other variable, or one whose value the context lacks, is left literal.
As in Envoy (``keep_empty_value: false``), an operation whose final value is empty does nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from chaoskit.config.http_route import HeaderOperations

Action = Literal["set", "add", "remove"]

_VARIABLE = re.compile(r"%%|%([A-Z][A-Z0-9_]*)(?:\(([^)%]*)\))?%")
_AUTHORITY = frozenset({"host", ":authority"})


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderOp:
    """One operation; ``name`` is lower-case, ``value`` may hold Envoy variables."""

    action: Action
    name: str
    value: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderPlan:
    """Operations in the order Envoy applies them."""

    ops: tuple[HeaderOp, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ops)

    def then(self, other: HeaderPlan) -> HeaderPlan:
        """This plan followed by ``other`` (whose ``set`` therefore wins)."""
        if not other.ops:
            return self
        if not self.ops:
            return other
        return HeaderPlan(self.ops + other.ops)

    @classmethod
    def of(cls, operations: HeaderOperations | None) -> HeaderPlan:
        """One level (rule or destination): removals, then sets, then adds, names sorted;
        ``host`` and pseudo-headers dropped (see :func:`authority_of`)."""
        if operations is None:
            return EMPTY_PLAN
        ops = [HeaderOp("remove", n.lower()) for n in operations.remove]
        # Istio sorts each list by the name as written (Go's byte order).
        ops += [HeaderOp("set", n.lower(), v) for n, v in sorted(operations.set.items())]
        ops += [HeaderOp("add", n.lower(), v) for n, v in sorted(operations.add.items())]
        return cls(tuple(op for op in ops if not _internal(op.name)))


EMPTY_PLAN = HeaderPlan()


def _internal(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def authority_of(operations: HeaderOperations | None) -> str | None:
    """The authority a ``host``/``:authority`` request header ``set`` (else ``add``) asks for."""
    if operations is None:
        return None
    for items in (operations.set, operations.add):
        for name, value in items.items():
            if name.lower() in _AUTHORITY:
                return value
    return None


def compose(
    route_level: HeaderPlan, destination_level: HeaderPlan, *, weighted: bool
) -> HeaderPlan:
    """Both levels in Envoy's order (see the module docstring)."""
    if weighted:
        return destination_level.then(route_level)
    return route_level.then(destination_level)


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderContext:
    """What Envoy variables in header values expand to; ``None`` leaves a variable literal."""

    hostname: str | None = None
    #: ``ip:port`` of the client.
    downstream_remote_address: str | None = None
    #: ``HTTP/1.1``, ``HTTP/2``…
    protocol: str | None = None
    start_time: datetime.datetime | None = None
    #: Request headers (lower-case names) for ``%REQ(name)%``.
    request_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


_NO_CONTEXT = HeaderContext()


def _without_port(address: str) -> str:
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address[1:]
    host, sep, port = address.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else address


def _variable(name: str, arg: str | None, ctx: HeaderContext) -> str | None:
    if arg is None:
        addr = ctx.downstream_remote_address
        if name == "HOSTNAME":
            return ctx.hostname
        if name == "DOWNSTREAM_REMOTE_ADDRESS":
            return addr
        if name == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
            return None if addr is None else _without_port(addr)
        if name == "PROTOCOL":
            return ctx.protocol
        if name == "START_TIME" and ctx.start_time is not None:
            t = ctx.start_time.astimezone(datetime.UTC)
            return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        return None
    if name == "REQ":
        main, _, alt = arg.partition("?")
        value = ctx.request_headers.get(main.strip().lower())
        if value is None and alt:
            value = ctx.request_headers.get(alt.strip().lower())
        return value or ""
    return None


def substitute(value: str, ctx: HeaderContext | None = None) -> str:
    """Expand ``%%`` and the supported Envoy variables in ``value``."""
    if "%" not in value:
        return value
    c = ctx or _NO_CONTEXT

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        out = _variable(m.group(1), m.group(2), c)
        return m.group(0) if out is None else out

    return _VARIABLE.sub(one, value)


def apply(
    plan: HeaderPlan, headers: Sequence[tuple[str, str]], ctx: HeaderContext | None = None
) -> list[tuple[str, str]]:
    """Run ``plan`` over ``headers`` (names compared case-insensitively); returns a new list.

    ``set`` replaces the first header of that name in place and drops the others (appends when
    absent); ``add`` appends another header; ``remove`` drops every header of that name.
    """
    out = list(headers)
    for op in plan.ops:
        if op.action == "remove":
            out = [(k, v) for k, v in out if k.lower() != op.name]
            continue
        value = substitute(op.value, ctx)
        if not value:
            continue
        if op.action == "add":
            out.append((op.name, value))
            continue
        first = next((i for i, (k, _) in enumerate(out) if k.lower() == op.name), None)
        if first is None:
            out.append((op.name, value))
        else:
            out[first] = (out[first][0], value)
            out = [h for i, h in enumerate(out) if i <= first or h[0].lower() != op.name]
    return out
