"""Does a request satisfy a VirtualService ``match`` entry? (``route.go`` ``TranslateRouteMatch``)

Fields of one entry are AND-ed, entries of a rule are OR-ed, a rule without entries matches
everything. What each field sees, as Envoy does after Istio's translation:

- ``uri``: the path without the query string; ``exact``/``prefix`` honour ``ignoreUriCase``,
  ``regex`` must match the whole path;
- ``scheme`` / ``method`` / ``authority``: the ``:scheme``, ``:method`` and ``:authority``
  pseudo-headers (authority as sent, port included);
- ``headers``: lower-case names, the value with repeated headers joined by ``,``; ``:path``
  (with query), ``:authority``/``host``, ``:method`` and ``:scheme`` read the pseudo-headers;
  ``@request.auth.claims…`` keys never match (chaoskit has no JWT authentication, so a claim
  is always absent; under ``withoutHeaders`` they always match);
- ``withoutHeaders``: inverted, a missing header counts as ``""``; ``{}`` means "absent";
- ``queryParams``: the first value of the raw (not percent-decoded) parameter, ``?key`` has
  value ``""``; ``{}`` means "present";
- ``port``, ``sourceLabels``, ``sourceNamespace``, ``gateways``: the proxy selectors Istio
  applies at config time (``sourceMatchHTTP``). A non-empty ``gateways`` list overrides the
  VirtualService's and, as in Istio, then *replaces* the source checks: an entry with
  ``gateways: [mesh]`` matches every sidecar whatever its ``sourceLabels``.
"""

from __future__ import annotations

from collections.abc import Sequence

from chaoskit.config.http_route import HTTPRoute
from chaoskit.config.match import HTTPMatchRequest, StringMatch
from chaoskit.routing.request import RequestInfo, Workload

#: What a rule without ``match`` entries matched with (a catch-all entry).
CATCH_ALL = HTTPMatchRequest()


def raw_query_params(query: str) -> dict[str, str]:
    """First value of each parameter, not decoded (Envoy's ``parseQueryString``)."""
    out: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        out.setdefault(key, value)
    return out


def header_value(req: RequestInfo, name: str) -> str | None:
    """A request header as Envoy's header matcher sees it, or ``None`` when absent."""
    name = name.lower()
    if name in (":authority", "host"):
        return req.authority
    if name == ":path":
        return f"{req.path}?{req.query}" if req.query else req.path
    if name == ":method":
        return req.method
    if name == ":scheme":
        return req.scheme
    return req.headers.get(name)


def _uri_matches(m: HTTPMatchRequest, path: str) -> bool:
    uri = m.uri
    if uri is None or uri.kind == "present":
        return True
    if uri.kind == "regex" or uri.ignore_case == m.ignore_uri_case:
        return uri.matches(path)
    return StringMatch(uri.kind, uri.value, ignore_case=m.ignore_uri_case).matches(path)


def _without(sm: StringMatch, value: str | None) -> bool:
    if sm.kind == "present":
        return value is None
    return not sm.matches("" if value is None else value)


def selects(m: HTTPMatchRequest, port: int, source: Workload, gateway: str) -> bool:
    """Istio's config-time selectors (``TranslateRoute``): does this entry exist for the proxy
    ``gateway`` serving ``port`` for the workload ``source``?"""
    if m.port is not None and m.port != port:
        return False
    if m.gateways:
        return gateway in m.gateways
    if any(source.labels.get(k) != v for k, v in m.source_labels.items()):
        return False
    return m.source_namespace is None or m.source_namespace == source.namespace


def request_matches(m: HTTPMatchRequest, req: RequestInfo) -> bool:
    """The per-request conditions: uri, scheme, method, authority, headers, query."""
    if not _uri_matches(m, req.path):
        return False
    for sm, value in ((m.scheme, req.scheme), (m.method, req.method), (m.authority, req.authority)):
        if sm is not None and not sm.matches(value):
            return False
    for name, sm in m.headers.items():
        if name.startswith("@") or not sm.matches(header_value(req, name)):
            return False
    for name, sm in m.without_headers.items():
        # An absent JWT claim never matches, so its inverted match always does.
        if not name.startswith("@") and not _without(sm, header_value(req, name)):
            return False
    if m.query_params:
        params = raw_query_params(req.query)
        for name, sm in m.query_params.items():
            if not sm.matches(params.get(name)):
                return False
    return True


def matches(m: HTTPMatchRequest, req: RequestInfo, gateway: str) -> bool:
    """Whether ``req`` matches ``m`` on the proxy ``gateway`` (``"mesh"`` or ``"ns/name"``).

    ``req.port`` is the port the proxy serves (the service port on a sidecar, the server port
    on a gateway) and ``req.source`` the workload whose proxy evaluates the rule.
    """
    return selects(m, req.port, req.source, gateway) and request_matches(m, req)


def is_catch_all(m: HTTPMatchRequest) -> bool:
    """Istio's ``IsCatchAllRoute`` on the translated entry: path ``/`` (or regex ``.*``) and no
    header or query condition. Selectors do not count: they were applied at config time."""
    u = m.uri
    path_all = (
        u is None
        or u.kind == "present"
        or (u.kind == "prefix" and u.value == "/")
        or (u.kind == "regex" and u.value == ".*")
    )
    return (
        path_all
        and not (m.scheme or m.method or m.authority)
        and not (m.headers or m.without_headers or m.query_params)
    )


def selected_entries(
    http: Sequence[HTTPRoute], port: int, source: Workload, gateway: str
) -> tuple[tuple[HTTPRoute, HTTPMatchRequest], ...]:
    """The (rule, entry) pairs Istio emits for one proxy, in order
    (``BuildHTTPRoutesForVirtualService``): entries failing :func:`selects` are dropped and
    nothing is emitted after the first catch-all. A rule without entries is one catch-all
    entry (:data:`CATCH_ALL`)."""
    out: list[tuple[HTTPRoute, HTTPMatchRequest]] = []
    for route in http:
        if not route.match:
            out.append((route, CATCH_ALL))
            break
        done = False
        for m in route.match:
            if selects(m, port, source, gateway):
                out.append((route, m))
                if is_catch_all(m):
                    done = True
                    break
        if done:
            break
    return tuple(out)


def first_match(route: HTTPRoute, req: RequestInfo, gateway: str) -> HTTPMatchRequest | None:
    """The first entry of ``route`` that matches (:data:`CATCH_ALL` for a rule without any)."""
    if not route.match:
        return CATCH_ALL
    return next((m for m in route.match if matches(m, req, gateway)), None)


def route_matches(route: HTTPRoute, req: RequestInfo, gateway: str) -> bool:
    """OR over the rule's entries; a rule without entries matches every request."""
    return first_match(route, req, gateway) is not None
