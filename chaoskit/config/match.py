"""``StringMatch`` and ``HTTPMatchRequest``: the request predicates of a VirtualService rule.

Semantics follow Envoy as Istio configures it (istio/istio
``pilot/pkg/networking/core/route/route.go``, ``TranslateRouteMatch``): ``prefix`` is a raw string
prefix, ``regex`` must match the *whole* value, an empty match ``{}`` tests presence, and
``withoutHeaders`` treats a missing header as the empty string.

Regexes: Istio uses RE2. chaoskit compiles them with Python's ``re`` and refuses the constructs
RE2 lacks (look-around, back-references) so a config that works here also works in a mesh.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Literal

from chaoskit.config.fields import Fields

MAX_REGEX_LEN = 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_NOT_RE2 = (
    ("(?=", "look-ahead"),
    ("(?!", "negative look-ahead"),
    ("(?<=", "look-behind"),
    ("(?<!", "negative look-behind"),
    ("(?P=", "named back-reference"),
)
_BACKREF = re.compile(r"(?<!\\)\\[1-9]")

MatchKind = Literal["exact", "prefix", "regex", "present"]


@dataclasses.dataclass(frozen=True, slots=True)
class StringMatch:
    """One of ``exact`` / ``prefix`` / ``regex``, or ``present`` for the empty match ``{}``."""

    kind: MatchKind
    value: str = ""
    pattern: re.Pattern[str] | None = None
    ignore_case: bool = False

    def matches(self, text: str | None) -> bool:
        if self.kind == "present":
            return text is not None
        if text is None:
            return False
        if self.kind == "regex":
            assert self.pattern is not None
            return self.pattern.fullmatch(text) is not None
        if self.ignore_case:
            text, value = text.lower(), self.value.lower()
        else:
            value = self.value
        if self.kind == "exact":
            return text == value
        return text.startswith(value)

    def describe(self) -> str:
        return "present" if self.kind == "present" else f"{self.kind} {self.value!r}"


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPMatchRequest:
    """All conditions of one ``match[]`` entry; they are AND-ed."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: Mapping[str, StringMatch] = dataclasses.field(default_factory=dict)
    without_headers: Mapping[str, StringMatch] = dataclasses.field(default_factory=dict)
    query_params: Mapping[str, StringMatch] = dataclasses.field(default_factory=dict)
    port: int | None = None
    source_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    source_namespace: str | None = None
    gateways: tuple[str, ...] = ()
    ignore_uri_case: bool = False

    @property
    def is_catch_all(self) -> bool:
        """True when this entry matches every request it is offered (``prefix: /`` or nothing)."""
        uri_all = self.uri is None or (self.uri.kind == "prefix" and self.uri.value == "/")
        return (
            uri_all
            and not any((self.scheme, self.method, self.authority))
            and not self.headers
            and not self.without_headers
            and not self.query_params
            and self.port is None
            and not self.source_labels
            and self.source_namespace is None
            and not self.gateways
        )


def compile_regex(f: Fields, key: str, regex: str) -> re.Pattern[str] | None:
    """Compile an Istio (RE2) regex, reporting what Python or RE2 would refuse."""
    if not regex:
        f.error(key, "regex string match should not be empty")
        return None
    if len(regex) > MAX_REGEX_LEN:
        f.error(key, f"regex is longer than {MAX_REGEX_LEN} characters")
        return None
    for token, what in _NOT_RE2:
        if token in regex:
            f.error(
                key, f"{what} {token!r} is not supported: Istio uses RE2 style regex-based match"
            )
            return None
    if _BACKREF.search(regex):
        f.error(key, "back-references are not supported: Istio uses RE2 style regex-based match")
        return None
    try:
        return re.compile(regex)
    except (re.error, RecursionError, OverflowError) as e:
        f.error(key, f"invalid regex {regex!r}: {e}")
        return None


def parse_string_match(
    f: Fields, *, allow_empty_prefix: bool = False, ignore_case: bool = False
) -> StringMatch | None:
    """Read a StringMatch; ``{}`` is a presence check."""
    exact = f.str("exact")
    prefix = f.str("prefix")
    regex = f.str("regex")
    f.done()
    given = [
        k for k, v in (("exact", exact), ("prefix", prefix), ("regex", regex)) if v is not None
    ]
    if len(given) > 1:
        f.error(None, f"only one of exact, prefix, regex may be set (got {', '.join(given)})")
        return None
    if exact is not None:
        return StringMatch("exact", exact, ignore_case=ignore_case)
    if prefix is not None:
        if not prefix and not allow_empty_prefix:
            f.error("prefix", "prefix string match should not be empty")
            return None
        return StringMatch("prefix", prefix, ignore_case=ignore_case)
    if regex is not None:
        if regex == "*":
            # Istio translates regex "*" to a presence match (legal only under withoutHeaders).
            return StringMatch("present")
        pattern = compile_regex(f, "regex", regex)
        return StringMatch("regex", regex, pattern) if pattern else None
    return StringMatch("present")


#: Header keys under this prefix match JWT claims, not request headers.
CLAIM_PREFIX = "@request.auth.claims"


def _header_map(f: Fields, key: str, *, query: bool = False) -> dict[str, StringMatch]:
    out: dict[str, StringMatch] = {}
    raw = f.data.get(key)
    for name, sub in f.obj_map(key).items():
        if key == "headers" and isinstance(raw, dict) and raw.get(name, {}) is None:
            sub.error(None, f"header match {name} cannot be null")  # validateHTTPRouteMatchRequest
            continue
        if not query:
            if not (
                _TOKEN.match(name) or _is_pseudo(name) or name.startswith("@request.auth.claims")
            ):
                sub.error(None, f"header name {name!r} is not a valid HTTP token")
                continue
            if name.lower() in ("uri", "scheme", "method", "authority"):
                sub.warn(None, f"header key {name!r} is ignored by Istio; use match.{name.lower()}")
                sub.accept("exact", "prefix", "regex")
                continue
        if key == "headers" and sub.data.get("regex") == "*":
            sub.error("regex", "regex '*' is only allowed under withoutHeaders")
            sub.accept("exact", "prefix", "regex")
            continue
        sm = parse_string_match(sub)
        if sm is not None:
            out[name if query else name.lower()] = sm
    return out


def is_jwt_claim_key(name: str) -> bool:
    """A header-match key that routes on a JWT claim (istio/istio ``pkg/jwt/routing.go``).

    ``@request.auth.claims.a.b`` or ``@request.auth.claims[a][b]``; case-insensitive prefix.
    """
    if not name.lower().startswith(CLAIM_PREFIX):
        return False
    rest = name[len(CLAIM_PREFIX) :]
    return (rest.startswith(".") and len(rest) > 1) or (
        rest.startswith("[") and rest.endswith("]") and len(rest) > 2
    )


def _is_pseudo(name: str) -> bool:
    return name.startswith(":") and bool(_TOKEN.match(name[1:]))


def parse_match_request(f: Fields) -> HTTPMatchRequest:
    """Read one ``match[]`` entry (gateway names are normalised by the caller)."""
    ignore_case = bool(f.bool("ignoreUriCase"))
    uri = _opt(f, "uri", allow_empty_prefix=True, ignore_case=ignore_case)
    scheme = _opt(f, "scheme")
    method = _opt(f, "method")
    authority = _opt(f, "authority")
    headers = _header_map(f, "headers")
    without = _header_map(f, "withoutHeaders")
    query = _header_map(f, "queryParams", query=True)
    port = f.int("port", minimum=1, maximum=65535)
    source_labels = f.str_map("sourceLabels")
    source_namespace = f.str("sourceNamespace")
    gateways = f.str_list("gateways")
    name = f.str("name")
    f.accept("statPrefix")
    f.done()
    if not f.data:
        f.error(None, "match entry must not be empty (omit match for a catch-all)")
    return HTTPMatchRequest(
        name=name,
        uri=uri,
        scheme=scheme,
        method=method,
        authority=authority,
        headers=headers,
        without_headers=without,
        query_params=query,
        port=port,
        source_labels=source_labels,
        source_namespace=source_namespace,
        gateways=gateways,
        ignore_uri_case=ignore_case,
    )


def _opt(f: Fields, key: str, **kw: bool) -> StringMatch | None:
    sub = f.obj(key)
    return parse_string_match(sub, **kw) if sub is not None else None
