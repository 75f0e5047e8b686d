"""``HTTPRoute`` and its parts, named after istio/api's ``virtual_service.proto`` messages.

Each ``parse_*`` function reads one message through :class:`~chaoskit.config.fields.Fields`, applies
the single-resource rules of Istio's validation webhook (istio/istio
``pkg/config/validation/virtualservice.go``) and returns a frozen object. Cross-resource rules (does
the subset exist?) live in :mod:`.checks`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Mapping

from chaoskit.config.fields import UINT32_MAX, Fields, did_you_mean
from chaoskit.config.hosts import check_host, expand, is_dns1123_label
from chaoskit.config.match import HTTPMatchRequest, compile_regex, parse_match_request
from chaoskit.config.yamlsource import Location

#: Envoy/Istio ``retryOn`` conditions (router_filter docs and x-envoy-retry-grpc-on).
RETRY_ON_HTTP = (
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "reset-before-request",
    "http3-post-connect-failure",
)
RETRY_ON_GRPC = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
#: What Istio retries on when a policy sets no ``retryOn``, for a route's ``retries`` and the mesh
#: default alike (istio/istio ``pilot/pkg/networking/core/route/retry/retry.go``,
#: ``defaultPolicy``).
DEFAULT_RETRY_ON = (
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
)

#: gRPC status names accepted by ``abort.grpcStatus`` and their numeric codes.
GRPC_STATUS = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}

_CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_HEADER_VAR = re.compile(r"%(%|[A-Z_]+(\([^%]*\))?%)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_DIRECT_BODY = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Destination:
    """Where traffic goes: a host (as written and fully qualified), a subset, a port."""

    host: str
    fqdn: str
    subset: str | None = None
    port: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderOperations:
    set: Mapping[str, str] = dataclasses.field(default_factory=dict)
    add: Mapping[str, str] = dataclasses.field(default_factory=dict)
    remove: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Headers:
    request: HeaderOperations = HeaderOperations()
    response: HeaderOperations = HeaderOperations()


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPRouteDestination:
    destination: Destination
    weight: int = 0
    headers: Headers | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPRedirect:
    uri: str | None = None
    prefix_rewrite: str | None = None
    authority: str | None = None
    scheme: str | None = None
    port: int | None = None
    derive_port: str | None = None
    redirect_code: int = 301


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPDirectResponse:
    status: int
    body: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RegexRewrite:
    match: re.Pattern[str]
    rewrite: str


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPRewrite:
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPRetry:
    """``retries``: ``retry_on`` keeps Istio's tokens; ``None`` means "Istio's default list"."""

    attempts: int
    per_try_timeout: float | None = None
    retry_on: tuple[str, ...] | None = None
    retry_remote_localities: bool = False
    retry_ignore_previous_hosts: bool = True
    backoff: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Delay:
    fixed_delay: float
    percentage: float  # 0..100; unset in YAML means 0 (Istio's rule)


@dataclasses.dataclass(frozen=True, slots=True)
class Abort:
    percentage: float
    http_status: int | None = None
    grpc_status: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPFaultInjection:
    delay: Delay | None = None
    abort: Abort | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPMirrorPolicy:
    destination: Destination
    percentage: float = 100.0  # unset means 100 (Istio's rule, unlike faults)


@dataclasses.dataclass(frozen=True, slots=True)
class CorsPolicy:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: float | None = None
    allow_credentials: bool | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Delegate:
    name: str
    namespace: str


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPRoute:
    """One ``http[]`` rule. ``timeout`` is ``None`` when the YAML sets none."""

    index: int
    location: Location
    name: str | None = None
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: float | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirrors: tuple[HTTPMirrorPolicy, ...] = ()
    headers: Headers | None = None
    cors_policy: CorsPolicy | None = None

    @property
    def is_catch_all(self) -> bool:
        return not self.match or any(m.is_catch_all for m in self.match)


# --------------------------------------------------------------------------------------------


def parse_destination(f: Fields) -> Destination | None:
    host = f.str("host", required=True)
    subset = f.str("subset")
    port = None
    if (pf := f.obj("port")) is not None:
        port = pf.int("number", minimum=1, maximum=65535)
        pf.done()
    f.done()
    if subset is not None and not is_dns1123_label(subset):
        f.error("subset", f"subset {subset!r} is not a valid DNS-1123 label")
    if host is None:
        return None
    if host == "*":
        f.error("host", "destination host cannot be '*'")
        return None
    if problem := check_host(host, allow_partial=True):
        f.error("host", problem)
        return None
    return Destination(host=host, fqdn=expand(host, f.ctx.namespace), subset=subset, port=port)


def _header_ops(f: Fields | None, *, response: bool, authority_seen: list[str]) -> HeaderOperations:
    if f is None:
        return HeaderOperations()
    out: dict[str, dict[str, str]] = {}
    for op in ("set", "add"):
        values = f.str_map(op, scalars_as_text=True)
        for name, value in values.items():
            path = f"{op}.{name}"
            low = name.lower()
            if not name:
                f.error(op, "header name must not be empty")
            elif low.startswith(":") and low != ":authority":
                f.error(op, f"{name!r}: pseudo-headers cannot be set")
            elif low in ("host", ":authority") and response:
                f.error(op, f"{name!r} cannot be set on a response")
            elif low in ("host", ":authority"):
                authority_seen.append(f"{f.path}.{path}")
            if _CONTROL.search(value):
                f.error(op, f"header {name!r}: value contains control characters")
            elif _HEADER_VAR.sub("", value).count("%"):
                f.error(op, f"header {name!r}: a literal '%' must be written '%%'")
        out[op] = values
    remove = f.str_list("remove")
    for name in remove:
        if not name:
            f.error("remove", "header name must not be empty")
        elif name.startswith(":") or name.lower() == "host":
            f.error("remove", f"{name!r} cannot be removed")
    f.done()
    return HeaderOperations(set=out["set"], add=out["add"], remove=remove)


def parse_headers(f: Fields | None, authority_seen: list[str]) -> Headers | None:
    if f is None:
        return None
    req = _header_ops(f.obj("request"), response=False, authority_seen=authority_seen)
    resp = _header_ops(f.obj("response"), response=True, authority_seen=authority_seen)
    f.done()
    return Headers(request=req, response=resp)


def parse_retry(f: Fields) -> HTTPRetry | None:
    attempts = f.int("attempts", minimum=None)
    per_try = f.duration("perTryTimeout")
    retry_on_text = f.str("retryOn")
    remote = f.bool("retryRemoteLocalities")
    ignore_prev = f.bool("retryIgnorePreviousHosts")
    backoff = f.duration("backoff")
    f.done()
    if attempts is not None and attempts < 0:
        f.error("attempts", "attempts cannot be negative")
        return None
    attempts = attempts or 0
    if attempts == 0 and (per_try is not None or retry_on_text is not None or remote):
        f.error(None, "http retry policy configured when attempts are set to 0 (disabled)")
    retry_on = None
    if retry_on_text is not None:
        tokens = tuple(retry_on_text.split(","))
        for token in tokens:
            if token in RETRY_ON_HTTP or token in RETRY_ON_GRPC:
                continue
            if token.isdigit() and 100 <= int(token) <= 599:
                continue
            hint = " (no spaces around commas)" if token != token.strip() else ""
            known = RETRY_ON_HTTP + RETRY_ON_GRPC
            f.error(
                "retryOn",
                f"{token!r} is not a valid retryOn policy{hint}"
                + did_you_mean(token.strip(), known),
            )
        retry_on = tokens
    return HTTPRetry(
        attempts=attempts,
        per_try_timeout=per_try,
        retry_on=retry_on,
        retry_remote_localities=bool(remote),
        retry_ignore_previous_hosts=True if ignore_prev is None else ignore_prev,
        backoff=backoff,
    )


def _fault_percentage(f: Fields, what: str, *, allow_int_percent: bool) -> float:
    if f.has("percentage"):
        value = f.percent("percentage")
        if value == 0:
            f.warn("percentage", f"{what} percentage is 0%: it never fires")
        return value if value is not None else 0.0
    if allow_int_percent and f.has("percent"):
        value = f.int("percent", minimum=0, maximum=100)
        # istioctl analyze's deprecation analyzer (deprecation.go) flags it when above 0.
        code = "IST0002" if value else ""
        f.warn("percent", "percent is deprecated; use percentage: {value: N}", code=code)
        return float(value or 0)
    f.accept("percentage")
    f.warn(
        None,
        f"{what} has no percentage, which Istio treats as 0%: it never fires "
        "(add percentage: {value: 100})",
    )
    return 0.0


def parse_fault(f: Fields) -> HTTPFaultInjection | None:
    delay = abort = None
    if (d := f.obj("delay")) is not None:
        fixed = d.duration("fixedDelay")
        if d.has("exponentialDelay"):
            d.accept("exponentialDelay")
            d.error("exponentialDelay", "exponentialDelay is not supported yet")
        elif fixed is None and not d.has("fixedDelay"):
            d.error(None, '"fixedDelay" is required')
        pct = _fault_percentage(d, "delay", allow_int_percent=True)
        d.accept("percent")
        d.done()
        if fixed is not None:
            delay = Delay(fixed_delay=fixed, percentage=pct)
    if (a := f.obj("abort")) is not None:
        status = a.int("httpStatus")
        grpc = a.str("grpcStatus")
        if a.has("http2Error"):
            a.accept("http2Error")
            a.error("http2Error", "http2Error is not supported yet")
        if a.has("percent"):
            a.accept("percent")
            a.error(
                "percent",
                "abort.percent was removed in Istio 1.5 (it is pruned, leaving 0%); "
                "use percentage: {value: N}",
            )
        pct = (
            0.0
            if a.has("percent") and not a.has("percentage")
            else _fault_percentage(a, "abort", allow_int_percent=False)
        )
        a.accept("percentage")
        a.done()
        if status is not None and grpc is not None:
            a.error(None, "only one of httpStatus, grpcStatus may be set")
        elif status is not None and not 200 <= status <= 600:
            a.error("httpStatus", f"HTTP status {status} is not in range 200-599")
        elif grpc is not None and grpc not in GRPC_STATUS:
            a.error("grpcStatus", f"{grpc!r} is not a gRPC status name (e.g. UNAVAILABLE)")
        elif status is None and grpc is None and not a.has("http2Error"):
            a.warn(None, "abort sets no error type (httpStatus or grpcStatus): nothing is aborted")
        else:
            abort = Abort(percentage=pct, http_status=status, grpc_status=grpc)
    f.done()
    if delay is None and abort is None and not f.has("delay") and not f.has("abort"):
        f.error(None, "HTTP fault injection must have an abort and/or a delay")
        return None
    return HTTPFaultInjection(delay=delay, abort=abort)


def parse_redirect(f: Fields, matches: tuple[HTTPMatchRequest, ...]) -> HTTPRedirect | None:
    uri = f.str("uri")
    prefix_rewrite = f.str("prefixRewrite")
    authority = f.str("authority")
    scheme = f.str("scheme")
    port = f.int("port", minimum=1, maximum=65535)
    derive = f.enum("derivePort", ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"))
    code = f.int("redirectCode")
    f.done()
    if uri is not None and prefix_rewrite is not None:
        f.error(None, "only one of uri, prefixRewrite may be set")
    # validateHTTPRedirect: only matches that have a uri must use a prefix.
    if prefix_rewrite is not None and any(
        m.uri is not None and m.uri.kind != "prefix" for m in matches
    ):
        f.error("prefixRewrite", "prefixRewrite requires all uri matches to use a prefix")
    if all(v is None for v in (uri, prefix_rewrite, authority, scheme, port, derive)):
        f.error(None, "redirect must specify uri, authority, scheme or port")
    if scheme is not None and scheme not in ("http", "https"):
        f.error("scheme", f'scheme must be "http" or "https", not {scheme!r}')
    if port is not None and derive is not None:
        f.error(None, "only one of port, derivePort may be set")
    if code is not None and not 300 <= code <= 399:
        f.error("redirectCode", f"redirect code {code} is not in range 300-399")
    return HTTPRedirect(
        uri=uri,
        prefix_rewrite=prefix_rewrite,
        authority=authority,
        scheme=scheme,
        port=port,
        derive_port=derive,
        redirect_code=code or 301,
    )


def parse_direct_response(f: Fields) -> HTTPDirectResponse | None:
    status = f.int("status", required=True)
    body: bytes | None = None
    if (b := f.obj("body")) is not None:
        text = b.str("string")
        raw = b.str("bytes")
        b.done()
        if text is not None and raw is not None:
            b.error(None, "only one of string, bytes may be set")
        elif text is not None:
            body = text.encode()
        elif raw is not None:
            try:
                body = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                b.error("bytes", "bytes must be base64")
        if body is not None and len(body) > _MAX_DIRECT_BODY:
            b.error(None, "direct response body exceeds 1 MB")
        elif body is not None and len(body) > 100 * 1024:
            b.warn(
                None,
                "direct response body is larger than 100 kB; consider serving it from a service",
            )
    f.done()
    if status is None:
        return None
    if not 200 <= status <= 600:  # validateHTTPStatus accepts 600 despite its message
        f.error("status", f"HTTP status {status} is not in range 200-599")
        return None
    return HTTPDirectResponse(status=status, body=body)


def parse_rewrite(f: Fields, authority_seen: list[str]) -> HTTPRewrite:
    uri = f.str("uri")
    authority = f.str("authority")
    regex_rewrite = None
    if (r := f.obj("uriRegexRewrite")) is not None:
        m = r.str("match")
        rw = r.str("rewrite")
        r.done()
        if m is None or rw is None:
            r.error(None, "uriRegexRewrite needs both match and rewrite")
        else:
            pattern = compile_regex(r, "match", m)
            if pattern is not None:
                regex_rewrite = RegexRewrite(pattern, rw)
    f.done()
    if uri is not None and f.has("uriRegexRewrite"):
        f.error(None, "only one of uri, uriRegexRewrite may be set")
    if uri is None and authority is None and not f.has("uriRegexRewrite"):
        f.error(None, "rewrite must specify uri, uriRegexRewrite or authority")
    if authority is not None:
        authority_seen.append(f.sub("authority"))
    return HTTPRewrite(uri=uri, authority=authority, uri_regex_rewrite=regex_rewrite)


def parse_cors(f: Fields) -> CorsPolicy:
    origins: list[str] = []
    for sub in f.objs("allowOrigins"):
        given = [v for v in (sub.str(k) for k in ("exact", "prefix", "regex")) if v is not None]
        if not any(given):  # validateAllowOrigins: an empty or missing match string
            sub.error(None, "allowOrigins entry must set a non-empty exact, prefix or regex")
        origins.extend(given)
        sub.done()
    origins.extend(f.str_list("allowOrigin"))
    methods = f.str_list("allowMethods")
    for m in methods:
        if m not in _CORS_METHODS:
            f.error("allowMethods", f"{m!r} is not a supported HTTP method")
    max_age = f.duration("maxAge")
    if max_age is not None and not float(max_age).is_integer():
        f.error("maxAge", "max_age duration is accurate only to seconds precision")
    creds = f.bool("allowCredentials")
    f.enum("unmatchedPreflights", ("FORWARD", "IGNORE"))
    cors = CorsPolicy(
        allow_origins=tuple(origins),
        allow_methods=methods,
        allow_headers=f.str_list("allowHeaders"),
        expose_headers=f.str_list("exposeHeaders"),
        max_age=max_age,
        allow_credentials=creds,
    )
    f.done()
    return cors


def parse_route_destinations(f: Fields) -> tuple[HTTPRouteDestination, ...]:
    out = []
    authority_unused: list[str] = []
    items = f.objs("route")
    weights = []
    for d in items:
        dest_f = d.obj("destination", required=True)
        dest = parse_destination(dest_f) if dest_f is not None else None
        weight = d.int("weight", minimum=None, maximum=UINT32_MAX)
        if weight is not None and weight < 0:
            d.error("weight", f"weight {weight} < 0")
            weight = None
        headers = parse_headers(d.obj("headers"), authority_unused)
        d.done()
        weights.append(weight or 0)
        if dest is not None:
            out.append(HTTPRouteDestination(dest, weight or 0, headers))
    if len(items) > 1 and sum(weights) == 0:
        f.error("route", "total destination weight = 0")
    return tuple(out)


def parse_mirrors(f: Fields) -> tuple[HTTPMirrorPolicy, ...]:
    out = []
    if f.has("mirror") and f.has("mirrors"):
        f.error(None, "HTTP route cannot contain both mirror and mirrors")
    if (m := f.obj("mirror")) is not None:
        dest = parse_destination(m)
        pct = 100.0
        if f.has("mirrorPercentage"):
            pct = f.percent("mirrorPercentage") or 0.0
        elif f.has("mirrorPercent"):
            pct = float(f.int("mirrorPercent", minimum=0, maximum=100) or 0)
            f.warn("mirrorPercent", "mirrorPercent is deprecated; use mirrorPercentage: {value: N}")
        if dest is not None:
            out.append(HTTPMirrorPolicy(dest, pct))
    elif f.has("mirrorPercentage"):
        f.percent("mirrorPercentage")  # validateHTTPRoute checks the range even without a mirror
    elif f.has("mirrorPercent"):
        f.int("mirrorPercent", minimum=0, maximum=100)
        f.warn("mirrorPercent", "mirrorPercent is deprecated; use mirrorPercentage: {value: N}")
    f.accept("mirrorPercentage", "mirrorPercent", "mirror_percent")
    for mp in f.objs("mirrors"):
        dest_f = mp.obj("destination", required=True)
        dest = parse_destination(dest_f) if dest_f is not None else None
        mirror_pct = mp.percent("percentage") if mp.has("percentage") else 100.0
        mp.accept("percentage")
        mp.done()
        if dest is not None and mirror_pct is not None:
            out.append(HTTPMirrorPolicy(dest, mirror_pct))
    return tuple(out)


def parse_http_route(
    f: Fields, index: int, normalize_gateway: Callable[[Fields, str, str], str | None]
) -> HTTPRoute:
    """Read one ``http[]`` rule with the single-resource rules of Istio's webhook."""
    matches = []
    for mf in f.objs("match"):
        m = parse_match_request(mf)
        if m.gateways:  # most matches name none: no copy to make then
            gws = tuple(g for g in (normalize_gateway(mf, "gateways", g) for g in m.gateways) if g)
            m = dataclasses.replace(m, gateways=gws)
        matches.append(m)
    match = tuple(matches)
    authority_seen: list[str] = []
    route = parse_route_destinations(f)
    redirect = parse_redirect(r, match) if (r := f.obj("redirect")) is not None else None
    direct = parse_direct_response(d) if (d := f.obj("directResponse")) is not None else None
    delegate = None
    if (dg := f.obj("delegate")) is not None:
        name = dg.str("name", required=True)
        ns = dg.str("namespace") or f.ctx.namespace
        dg.done()
        if name:
            delegate = Delegate(name, ns)
    rewrite = parse_rewrite(rw, authority_seen) if (rw := f.obj("rewrite")) is not None else None
    timeout = f.duration("timeout")
    retries = parse_retry(rt) if (rt := f.obj("retries")) is not None else None
    fault = parse_fault(ft) if (ft := f.obj("fault")) is not None else None
    mirrors = parse_mirrors(f)
    headers = parse_headers(f.obj("headers"), authority_seen)
    cors = parse_cors(c) if (c := f.obj("corsPolicy")) is not None else None
    name = f.str("name")
    f.done()

    has = {
        k: f.has(k) for k in ("route", "redirect", "directResponse", "delegate", "fault", "rewrite")
    }
    pairs = (
        ("route", "redirect", "route and redirect"),
        ("fault", "redirect", "fault and redirect"),
        ("rewrite", "redirect", "rewrite and redirect"),
        ("directResponse", "redirect", "direct_response and redirect"),
        ("route", "directResponse", "route and direct_response"),
        ("fault", "directResponse", "fault and direct_response"),
        ("rewrite", "directResponse", "rewrite and direct_response"),
    )
    for a, b, text in pairs:
        if has[a] and has[b]:
            f.error(None, f"HTTP route cannot contain both {text}")
    if has["delegate"] and (has["route"] or has["redirect"]):
        f.error("delegate", "a route with delegate must not have route or redirect")
    if not (has["route"] or has["redirect"] or has["directResponse"] or has["delegate"]):
        f.error(None, "HTTP route, redirect or direct_response is required")
    if len(authority_seen) > 1:
        f.error(None, "authority header cannot be set multiple times: " + ", ".join(authority_seen))
    return HTTPRoute(
        index=index,
        location=f.loc(),
        name=name,
        match=match,
        route=route,
        redirect=redirect,
        direct_response=direct,
        delegate=delegate,
        rewrite=rewrite,
        timeout=timeout,
        retries=retries,
        fault=fault,
        mirrors=mirrors,
        headers=headers,
        cors_policy=cors,
    )
