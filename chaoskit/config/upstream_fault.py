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
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal, cast

from chaoskit.config.fields import Fields, did_you_mean, type_name
from chaoskit.config.hosts import check_host, expand, is_dns1123_label, is_ip
from chaoskit.config.http_route import GRPC_STATUS
from chaoskit.config.match import HTTPMatchRequest, parse_match_request
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.yamlsource import Location, YMap

#: Action fields in the order they are applied ("delay first").
ACTIONS = ("delay", "abort", "reset", "hang", "slowBody", "truncateBody", "corruptBody")
#: What a ``sequence`` step may name.
SEQUENCE_STEPS = (*ACTIONS, "pass")
DISTRIBUTIONS = ("uniform", "normal", "lognormal")
_PARAMS = {
    "uniform": ("min", "max"),
    "normal": ("mean", "stddev"),
    "lognormal": ("median", "sigma"),
}
_SELECTORS = ("firstN", "nth", "sequence")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Why two actions cannot hit the same attempt; other pairs get the general rule.
_CONFLICTS = {
    frozenset(("abort", "reset")): "an attempt either gets a response or a reset",
    frozenset(("abort", "hang")): "a hung attempt never answers",
    frozenset(("reset", "hang")): "a hung attempt is never reset",
}

Distribution = Literal["fixed", "uniform", "normal", "lognormal"]
ResetPoint = Literal["connect", "headers", "body"]


@dataclasses.dataclass(frozen=True, slots=True)
class FaultDelay:
    """A fixed delay, or one drawn per attempt; only the fields of ``distribution`` are set."""

    distribution: Distribution
    fixed_delay: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    stddev: float | None = None
    median: float | None = None
    sigma: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FaultAbort:
    """An answer *as if from the upstream*: ``body`` ``None`` means an empty body."""

    http_status: int | None = None
    grpc_status: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FaultReset:
    """``connect``: refused before any response; ``headers``: cut after the response headers;
    ``body``: cut after ``after_bytes`` bytes of body."""

    after: ResetPoint
    after_bytes: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FaultSlowBody:
    bytes_per_second: int


@dataclasses.dataclass(frozen=True, slots=True)
class FaultTruncateBody:
    """The body ends (connection closed cleanly) after ``after_bytes`` bytes."""

    after_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class FaultCorruptBody:
    """``bytes`` body bytes are flipped (positions drawn from the seeded stream)."""

    bytes: int = 1


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
    #: ``host`` expanded with the fault's namespace (istio-reference §1).
    fqdn: str = ""
    subset: str | None = None
    endpoint_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    endpoint: Endpoint | None = None
    #: Any entry matching selects the request (OR); empty means every request.
    match: tuple[HTTPMatchRequest, ...] = ()
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None
    reset: FaultReset | None = None
    hang: bool = False
    slow_body: FaultSlowBody | None = None
    truncate_body: FaultTruncateBody | None = None
    corrupt_body: FaultCorruptBody | None = None
    percentage: float = 100.0
    first_n: int | None = None
    nth: int | None = None
    sequence: tuple[str, ...] = ()
    repeat: bool = False
    window: FaultWindow | None = None

    @property
    def actions(self) -> tuple[str, ...]:
        """Configured actions by their YAML names, in the order they apply."""
        values = (
            self.delay,
            self.abort,
            self.reset,
            self.hang or None,
            self.slow_body,
            self.truncate_body,
            self.corrupt_body,
        )
        return tuple(name for name, v in zip(ACTIONS, values, strict=True) if v is not None)

    @property
    def selection(self) -> str:
        """``percentage``, ``firstN``, ``nth`` or ``sequence``."""
        if self.first_n is not None:
            return "firstN"
        if self.nth is not None:
            return "nth"
        return "sequence" if self.sequence else "percentage"


# --------------------------------------------------------------------------------------------


def _no_own_percentage(f: Fields) -> None:
    # Istio's delay/abort carry their own percentage; here selection is per fault.
    for key in ("percentage", "percent"):
        if f.has(key):
            f.accept(key)
            f.error(
                key,
                "selection is set once for the whole fault: use spec.percentage, "
                "firstN, nth or sequence",
            )


def parse_delay(f: Fields) -> FaultDelay | None:
    fixed = f.duration("fixedDelay")
    dist = f.enum("distribution", DISTRIBUTIONS)
    values: dict[str, float | None] = {
        key: f.duration(key, allow_zero=True) for key in ("min", "max", "mean", "stddev")
    }
    values["median"] = f.duration("median")
    values["sigma"] = f.number("sigma")
    _no_own_percentage(f)
    f.done()
    if f.has("fixedDelay") and f.has("distribution"):
        f.error(None, "only one of fixedDelay, distribution may be set")
        return None
    if not f.has("fixedDelay") and not f.has("distribution"):
        f.error(None, "delay needs fixedDelay or distribution (uniform, normal, lognormal)")
        return None
    if fixed is None and dist is None:
        return None  # already reported
    wanted = _PARAMS[dist] if dist is not None else ()
    ok = True
    for d, params in _PARAMS.items():
        for key in params:
            if f.has(key) and key not in wanted:
                used = f"distribution: {dist}" if dist else "fixedDelay"
                f.error(key, f"{key} is not used with {used} (it belongs to distribution: {d})")
                ok = False
    for key in wanted:
        if not f.has(key):
            f.error(None, f'distribution {dist} needs "{key}"')
        ok = ok and values[key] is not None
    sigma = values["sigma"]
    if dist == "lognormal" and sigma is not None and sigma <= 0:
        f.error("sigma", f"sigma must be greater than 0, not {sigma:g}")
        ok = False
    lo, hi = values["min"], values["max"]
    if dist == "uniform" and lo is not None and hi is not None and lo > hi:
        f.error("max", f"max ({hi:g}s) is less than min ({lo:g}s)")
        ok = False
    if not ok:
        return None
    if dist is None:
        return FaultDelay("fixed", fixed_delay=fixed)
    return FaultDelay(
        cast(Distribution, dist),
        minimum=lo,
        maximum=hi,
        mean=values["mean"],
        stddev=values["stddev"],
        median=values["median"],
        sigma=sigma,
    )


def parse_abort(f: Fields) -> FaultAbort | None:
    status = f.int("httpStatus")
    grpc = f.str("grpcStatus")
    headers: dict[str, str] = f.str_map("headers", scalars_as_text=True)
    body = f.str("body")
    _no_own_percentage(f)
    f.done()
    ok = True
    for name, value in headers.items():
        if not _TOKEN.match(name):
            f.error("headers", f"header name {name!r} is not a valid HTTP token")
            ok = False
        elif _CONTROL.search(value):
            f.error("headers", f"header {name!r}: value contains control characters")
            ok = False
    if f.has("httpStatus") and f.has("grpcStatus"):
        f.error(None, "only one of httpStatus, grpcStatus may be set")
        return None
    if not f.has("httpStatus") and not f.has("grpcStatus"):
        f.error(None, "abort needs httpStatus or grpcStatus")
        return None
    if status is not None and not 200 <= status <= 599:
        f.error("httpStatus", f"HTTP status {status} is not in range 200-599")
        return None
    if grpc is not None and grpc not in GRPC_STATUS:
        hint = did_you_mean(grpc, GRPC_STATUS)
        f.error("grpcStatus", f"{grpc!r} is not a gRPC status name (e.g. UNAVAILABLE){hint}")
        return None
    if (status is None and grpc is None) or not ok:
        return None
    return FaultAbort(status, grpc, {k.lower(): v for k, v in headers.items()}, body)


def parse_reset(f: Fields) -> FaultReset | None:
    after = f.enum("after", ("connect", "headers"))
    after_bytes = f.int("afterBytes", minimum=None)
    f.done()
    if f.has("after") and f.has("afterBytes"):
        f.error(None, "only one of after, afterBytes may be set")
        return None
    if after_bytes is not None and after_bytes < 1:
        f.error(
            "afterBytes",
            f"afterBytes must be at least 1, not {after_bytes} "
            "(after: headers cuts right after the headers)",
        )
        return None
    if after_bytes is not None:
        return FaultReset("body", after_bytes)
    if after is not None:
        return FaultReset(cast(ResetPoint, after))
    if not f.has("after"):
        f.error(None, "reset needs after (connect or headers) or afterBytes")
    return None


def _parse_hang(spec: Fields) -> bool:
    value: Any = spec.raw("hang")
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, YMap):
        f = Fields(value, spec.sub("hang"), spec.ctx)
        f.done()  # every key is unknown: hang has no options
        return not value
    spec.error("hang", f"must be true or {{}}, not {type_name(value)}")
    return False


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
        for name in (a for a in ACTIONS if a in present and a not in sequence):
            spec.warn(name, f"{name} is configured but no sequence step names it: it never applies")


def _check_actions(spec: Fields, present: set[str]) -> None:
    if not present:
        spec.error(None, f"an UpstreamFault needs at least one action: {', '.join(ACTIONS)}")
        return
    if spec.has("sequence"):
        return  # each step applies only the action it names
    others = [a for a in ACTIONS if a in present and a != "delay"]
    for name in others[1:]:
        why = _CONFLICTS.get(frozenset((others[0], name)), "only delay combines with others")
        spec.error(
            name,
            f"{name} cannot be combined with {others[0]}: {why} (use sequence to alternate them)",
        )


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

    delay = parse_delay(d) if (d := spec.obj("delay")) is not None else None
    abort = parse_abort(a) if (a := spec.obj("abort")) is not None else None
    reset = parse_reset(r) if (r := spec.obj("reset")) is not None else None
    hang = _parse_hang(spec)
    slow = truncate = corrupt = None
    if (sf := spec.obj("slowBody")) is not None:
        rate = sf.int("bytesPerSecond", required=True, minimum=1)
        slow = FaultSlowBody(rate) if rate is not None else None
        sf.done()
    if (tf := spec.obj("truncateBody")) is not None:
        size = tf.int("afterBytes", required=True, minimum=0)
        truncate = FaultTruncateBody(size) if size is not None else None
        tf.done()
    if (cf := spec.obj("corruptBody")) is not None:
        count = cf.int("bytes", minimum=1)
        corrupt = FaultCorruptBody(count or 1) if count is not None or not cf.has("bytes") else None
        cf.done()
    present = {a for a in ACTIONS if spec.has(a) and spec.data[a] is not False}

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
        delay=delay,
        abort=abort,
        reset=reset,
        hang=hang,
        slow_body=slow,
        truncate_body=truncate,
        corrupt_body=corrupt,
        percentage=100.0 if percentage is None else percentage,
        first_n=first_n,
        nth=nth,
        sequence=sequence,
        repeat=repeat,
        window=window,
    )
