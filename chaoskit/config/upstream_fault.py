"""``UpstreamFault``: make an upstream misbehave *below* the retry layer.

An Istio ``fault`` sits before the router, so its aborts are never retried (istio#13705). An
UpstreamFault acts on each **upstream attempt** instead, as if the endpoint itself misbehaved:
retries, per-try timeouts, circuit breakers and outlier detection all see it, and an abort looks
like an upstream response (not an Envoy local reply), so ``retryOn`` decides whether it is retried.

Selection, evaluated per attempt that matches ``host``/``subset``/``endpointLabels``/``endpoint``
and ``match``:

- ``percentage`` (default **100**, unlike Istio's VS fault) draws once per attempt;
- ``firstN: N`` hits the first N matching attempts counted since the fault was applied;
- ``nth: N`` hits attempts N, 2N, 3N …;
- ``sequence: [abort, abort, pass]`` gives step i to the i-th matching attempt, then passes
  (or cycles with ``repeat: true``); each step applies only the action it names;
- ``window: {after, for}`` limits all of the above to a time span from when it was applied.

Without a sequence every configured action applies to a selected attempt, so the actions must
fit together: delay (always first) plus at most one other action.

The actions themselves (``delay``, ``abort``, ``reset``, ``hang``, ``slowBody``, ``pauseBody``,
``truncateBody``, ``corruptBody``, ``webSocket``), each with its config type and parser, are in
:mod:`chaoskit.faults.actions`; this module reads what is common to every fault (target,
selection, window) and the rules between actions.

A fault may instead hold TCP actions (``latency``, ``bandwidth``, ``slicer``, ``limitData``,
``resetPeer``, ``timeout``: :mod:`chaoskit.faults.tcp`), which act on each TCP *connection* to the
host through a TCP listener: selection then counts connections, shaping actions combine and at
most one ending applies. HTTP and TCP actions never share a fault, and a TCP fault has no
``match`` (:func:`check_protocol` checks the host's ports can carry its actions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from chaoskit.config.fields import Fields, did_you_mean, type_name
from chaoskit.config.hosts import check_host, expand, is_dns1123_label, is_ip
from chaoskit.config.issues import Issues
from chaoskit.config.match import HTTPMatchRequest, parse_match_request
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.service_entry import ServiceEntry
from chaoskit.config.tcp_ports import carries_http, carries_tcp, describe
from chaoskit.config.yamlsource import Location
from chaoskit.faults.actions import ACTION_NAMES, ACTIONS, Action, Stage
from chaoskit.faults.actions.abort import FaultAbort, parse_abort
from chaoskit.faults.actions.corrupt_body import FaultCorruptBody
from chaoskit.faults.actions.delay import DISTRIBUTIONS, Distribution, FaultDelay, parse_delay
from chaoskit.faults.actions.pause_body import FaultPauseBody
from chaoskit.faults.actions.reset import FaultReset, ResetPoint, parse_reset
from chaoskit.faults.actions.slow_body import FaultSlowBody
from chaoskit.faults.actions.truncate_body import FaultTruncateBody
from chaoskit.faults.actions.websocket import FaultWebSocket, SocketClose
from chaoskit.faults.tcp.actions import TCP_ACTION_NAMES, TCP_ACTIONS
from chaoskit.faults.tcp.base import TcpAction
from chaoskit.faults.tcp.endings import TcpLimitData, TcpResetPeer, TcpTimeout
from chaoskit.faults.tcp.shaping import TcpBandwidth, TcpLatency, TcpSlicer

__all__ = [
    "DISTRIBUTIONS",
    "SEQUENCE_STEPS",
    "Distribution",
    "Endpoint",
    "FaultAbort",
    "FaultCorruptBody",
    "FaultDelay",
    "FaultPauseBody",
    "FaultReset",
    "FaultSlowBody",
    "FaultTruncateBody",
    "FaultWebSocket",
    "FaultWindow",
    "ResetPoint",
    "SocketClose",
    "UpstreamFault",
    "parse_abort",
    "parse_delay",
    "parse_reset",
    "parse_upstream_fault",
]

#: Every action a fault may hold: the HTTP ones, then the TCP ones.
_ALL_ACTIONS: tuple[Action[Any] | TcpAction[Any], ...] = (*ACTIONS, *TCP_ACTIONS)
#: What a ``sequence`` step may name.
SEQUENCE_STEPS = (*ACTION_NAMES, *TCP_ACTION_NAMES, "pass")
_SELECTORS = ("firstN", "nth", "sequence")
#: The general rule for two actions that cannot hit the same attempt (see ``Action.conflicts``).
_ONLY_DELAY = "only delay combines with others"

C = TypeVar("C")


@dataclasses.dataclass(frozen=True, slots=True)
class FaultWindow:
    """Active from ``after`` s after the fault is applied, for ``duration`` s (None: forever)."""

    after: float = 0.0
    duration: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamFault(Resource):
    KIND = "UpstreamFault"

    host: str = ""
    #: ``host`` expanded with the fault's namespace, as Istio expands a short host name
    #: (https://istio.io/latest/docs/reference/config/networking/virtual-service/#Destination).
    fqdn: str = ""
    subset: str | None = None
    endpoint_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    endpoint: Endpoint | None = None
    #: Any entry matching selects the request (OR); empty means every request.
    match: tuple[HTTPMatchRequest, ...] = ()
    # One field per action of chaoskit.faults.actions.ACTIONS, named by its ``attr`` (the
    # admin's /config_dump shows them as they are).
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None
    reset: FaultReset | None = None
    hang: bool = False
    slow_body: FaultSlowBody | None = None
    pause_body: FaultPauseBody | None = None
    truncate_body: FaultTruncateBody | None = None
    corrupt_body: FaultCorruptBody | None = None
    websocket: FaultWebSocket | None = None
    # One field per TCP action of chaoskit.faults.tcp.actions.TCP_ACTIONS (by its ``attr``).
    latency: TcpLatency | None = None
    bandwidth: TcpBandwidth | None = None
    slicer: TcpSlicer | None = None
    limit_data: TcpLimitData | None = None
    reset_peer: TcpResetPeer | None = None
    timeout: TcpTimeout | None = None
    percentage: float = 100.0
    first_n: int | None = None
    nth: int | None = None
    sequence: tuple[str, ...] = ()
    repeat: bool = False
    window: FaultWindow | None = None

    def config(self, action: Action[C] | TcpAction[C]) -> C | None:
        """The config of ``action`` in this fault, ``None`` when it is not configured."""
        value = getattr(self, action.attr)
        return None if value is None or value is False else cast(C, value)

    @property
    def actions(self) -> tuple[str, ...]:
        """Configured actions by their YAML names, in the order they apply (HTTP actions, or
        TCP actions: a fault never holds both)."""
        return tuple(a.name for a in _ALL_ACTIONS if self.config(a) is not None)

    @property
    def is_tcp(self) -> bool:
        """Whether this fault acts on TCP connections (its actions are TCP actions) rather
        than on HTTP attempts."""
        return any(self.config(a) is not None for a in TCP_ACTIONS)

    @property
    def selection(self) -> str:
        """``percentage``, ``firstN``, ``nth`` or ``sequence``."""
        if self.first_n is not None:
            return "firstN"
        if self.nth is not None:
            return "nth"
        return "sequence" if self.sequence else "percentage"


# --------------------------------------------------------------------------------------------


def _parse_endpoint(spec: Fields) -> Endpoint | None:
    text = spec.str("endpoint")
    if text is None:
        return None
    address, sep, port_text = text.rpartition(":")
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
        problem = None if is_ip(address) and ":" in address else f"{address!r} is not IPv6"
    elif ":" in address:
        problem = "write an IPv6 endpoint in brackets: [ADDRESS]:PORT"
    else:
        problem = check_host(address, allow_wildcard=False) if address else "address is empty"
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        problem = f"{text!r} is not ADDRESS:PORT with a port in 1-65535"
    if problem:
        spec.error("endpoint", problem)
        return None
    return Endpoint(address.lower(), int(port_text))


def _parse_window(f: Fields) -> FaultWindow | None:
    after = f.duration("after", allow_zero=True)
    duration = f.duration("for")
    f.done()
    if not f.has("after") and not f.has("for"):
        f.error(None, "window needs after and/or for")
        return None
    if (after is None and f.has("after")) or (duration is None and f.has("for")):
        return None
    return FaultWindow(after or 0.0, duration)


def _parse_sequence(spec: Fields, present: set[str]) -> tuple[str, ...]:
    items = spec.list("sequence")
    if not items and isinstance(spec.data.get("sequence"), list):
        spec.error("sequence", "sequence must name at least one step")
    steps = []
    for path, item, loc in items:
        problem = None
        if not isinstance(item, str):
            problem = f"must be an action name, not {type_name(item)}"
        elif item not in SEQUENCE_STEPS:
            problem = (
                f'"{item}" is not one of {", ".join(SEQUENCE_STEPS)}'
                f"{did_you_mean(item, SEQUENCE_STEPS)}"
            )
        elif item != "pass" and item not in present:
            problem = f'"{item}" is not configured in this fault (add spec.{item})'
        if problem:
            spec.ctx.issues.error(loc, spec.ctx.resource, path, problem)
        else:
            steps.append(item)
    return tuple(steps)


def _check_selection(spec: Fields, sequence: tuple[str, ...], present: set[str]) -> None:
    chosen = [k for k in _SELECTORS if spec.has(k)]
    for key in chosen[1:]:
        spec.error(key, f"only one of firstN, nth, sequence may be set (also got {chosen[0]})")
    if chosen and spec.has("percentage"):
        spec.error(
            "percentage",
            f"percentage cannot be combined with {chosen[0]}: "
            "counted selection is deterministic (drop one of them)",
        )
    if spec.has("repeat") and "sequence" not in chosen:
        spec.error("repeat", "repeat only applies to sequence")
    if sequence and all(step == "pass" for step in sequence):
        spec.warn("sequence", "every step is pass: this fault never fires")
    elif sequence:
        names = (*ACTION_NAMES, *TCP_ACTION_NAMES)
        for name in (a for a in names if a in present and a not in sequence):
            spec.warn(name, f"{name} is configured but no sequence step names it: it never applies")


def _check_actions(spec: Fields, present: set[str]) -> None:
    if not present:
        spec.error(
            None,
            f"an UpstreamFault needs at least one action: {', '.join(ACTION_NAMES)} (HTTP) "
            f"or {', '.join(TCP_ACTION_NAMES)} (TCP)",
        )
        return
    if present & set(TCP_ACTION_NAMES):
        _check_tcp_actions(spec, present)
        return
    if spec.has("sequence"):
        return  # each step applies only the action it names
    others = [a for a in ACTIONS if a.name in present and a.stage is not Stage.DELAY]
    for action in others[1:]:
        first = others[0]
        why = _conflict(first, action)
        spec.error(
            action.name,
            f"{action.name} cannot be combined with {first.name}: {why} "
            "(use sequence to alternate them)",
        )


def _check_tcp_actions(spec: Fields, present: set[str]) -> None:
    """A TCP fault: no HTTP action, no ``match`` (a connection has no request to match), and
    without a sequence at most one ending (the shaping actions combine with anything)."""
    http = [name for name in ACTION_NAMES if name in present]
    tcp = [name for name in TCP_ACTION_NAMES if name in present]
    for name in http:
        spec.error(
            name,
            f"{name} is an HTTP action and {tcp[0]} a TCP one: a fault acts on HTTP requests or "
            "on TCP connections, not both (write two UpstreamFaults)",
        )
    if spec.has("match"):
        spec.error(
            "match",
            f"match selects HTTP requests; {tcp[0]} acts on whole TCP connections "
            "(target them with host, subset, endpointLabels or endpoint)",
        )
    if spec.has("sequence"):
        return
    endings = [a.name for a in TCP_ACTIONS if a.ending and a.name in present]
    for name in endings[1:]:
        spec.error(
            name,
            f"{name} cannot be combined with {endings[0]}: a connection ends only once "
            "(use sequence to alternate them)",
        )


def _conflict(first: Action[Any], later: Action[Any]) -> str:
    """Why ``first`` and ``later`` cannot hit the same attempt (either action may say)."""
    why = dict(later.conflicts).get(first.name) or dict(first.conflicts).get(later.name)
    return why or _ONLY_DELAY


def parse_upstream_fault(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> UpstreamFault:
    """Read an UpstreamFault ``spec``; combination rules are checked here, targets later."""
    host = spec.str("host", required=True)
    if host is not None and host == "*":
        spec.error("host", "host cannot be '*': name the upstream to break")
        host = None
    elif host is not None and (problem := check_host(host)):
        spec.error("host", problem)
        host = None
    subset = spec.str("subset")
    if subset is not None and not is_dns1123_label(subset):
        spec.error("subset", f"subset {subset!r} is not a valid DNS-1123 label")
    labels = spec.str_map("endpointLabels")
    endpoint = _parse_endpoint(spec)
    matches = []
    match_fields: list[Fields] = spec.objs("match")
    for mf in match_fields:
        m = parse_match_request(mf)
        if m.gateways:
            mf.error(
                "gateways",
                "gateways do not apply to an UpstreamFault (it acts on upstream attempts)",
            )
        matches.append(m)

    # Each action reads its own field, in ACTIONS order; a wrong one is reported and left out.
    configs: dict[str, Any] = {}
    for action in _ALL_ACTIONS:
        config = action.parse(spec)
        if config is not None:
            configs[action.attr] = config
    present = {
        a for a in (*ACTION_NAMES, *TCP_ACTION_NAMES) if spec.has(a) and spec.data[a] is not False
    }

    percentage = spec.percent("percentage") if spec.has("percentage") else 100.0
    spec.accept("percentage")
    if percentage == 0:
        spec.warn("percentage", "percentage 0: this fault never fires")
    first_n = spec.int("firstN", minimum=1)
    nth = spec.int("nth", minimum=1)
    sequence = _parse_sequence(spec, present)
    repeat = bool(spec.bool("repeat"))
    window = _parse_window(w) if (w := spec.obj("window")) is not None else None
    spec.done()
    _check_actions(spec, present)
    _check_selection(spec, sequence, present)

    return UpstreamFault(
        api_version=api_version,
        metadata=metadata,
        location=location,
        host=host or "",
        fqdn=expand(host, metadata.namespace) if host else "",
        subset=subset,
        endpoint_labels=labels,
        endpoint=endpoint,
        match=tuple(matches),
        percentage=100.0 if percentage is None else percentage,
        first_n=first_n,
        nth=nth,
        sequence=sequence,
        repeat=repeat,
        window=window,
        **configs,
    )


def check_protocol(fault: UpstreamFault, entry: ServiceEntry, issues: Issues) -> None:
    """A fault's actions must be able to act on some port of its host: TCP actions need a port
    a TCP listener serves, HTTP actions a port HTTP requests reach (a sniffed port, with no
    protocol, serves both)."""
    if not fault.actions or not entry.ports:
        return
    tcp = fault.is_tcp
    if any(carries_tcp(p) if tcp else carries_http(p) for p in entry.ports):
        return
    ports = ", ".join(describe(p) for p in entry.ports)
    if tcp:
        *names, last = (a.name for a in ACTIONS if a.stage is not Stage.SOCKET)
        hint = f"use {', '.join(names)} or {last}"
        message = f"{fault.host} has no TCP port ({ports}): TCP actions never apply to it; {hint}"
    else:
        hint = f"use {', '.join(TCP_ACTION_NAMES)}"
        message = (
            f"{fault.host} has only non-HTTP ports ({ports}): HTTP actions never apply to its "
            f"connections; {hint}"
        )
    issues.error(fault.location, fault.ref, f"spec.{fault.actions[0]}", message)
