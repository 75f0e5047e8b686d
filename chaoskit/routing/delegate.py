"""VirtualService delegation: a root rule with ``delegate`` takes the delegate's rules.

Istio merges delegates into the root before building any proxy configuration
(``virtualservice.go`` ``MergeHTTPRoutes``), for sidecars and gateways alike. Each delegate rule
becomes one root rule: its match entries are merged with every root entry they do not conflict
with (a delegate entry that conflicts with all root entries drops the whole delegate rule), and
fields the delegate leaves unset (rewrite, timeout, retries, fault, mirrors, headers, CORS,
direct response) are inherited from the root rule. A delegate that does not exist, has hosts, or
is not exported to the root's namespace contributes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from chaoskit.config.exports import exported_to
from chaoskit.config.http_route import HTTPRoute
from chaoskit.config.match import HTTPMatchRequest, StringMatch
from chaoskit.config.virtual_service import VirtualService


def _value(sm: StringMatch | None, kind: str) -> str:
    return sm.value if sm is not None and sm.kind == kind else ""


def string_match_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Istio's ``stringMatchConflict``: can ``leaf`` not be a subset of ``root``?"""
    if root is None or leaf is None:
        return False
    if _value(root, "regex") and (leaf.kind in ("regex", "prefix", "exact") and leaf.value):
        return True
    if _value(leaf, "regex") and (root.kind in ("regex", "prefix", "exact") and root.value):
        return True
    if exact := _value(root, "exact"):
        return bool(_value(leaf, "prefix")) or _value(leaf, "exact") != exact
    if prefix := _value(root, "prefix"):
        if p := _value(leaf, "prefix"):
            return not p.startswith(prefix)
        if e := _value(leaf, "exact"):
            return not e.startswith(prefix)
    return True


def has_conflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> bool:
    pairs = (
        (root.uri, leaf.uri),
        (root.scheme, leaf.scheme),
        (root.method, leaf.method),
        (root.authority, leaf.authority),
    )
    if any(string_match_conflict(a, b) for a, b in pairs):
        return True
    for mine, theirs in (
        (root.headers, leaf.headers),
        (root.without_headers, leaf.without_headers),
        (root.query_params, leaf.query_params),
    ):
        if any(string_match_conflict(mine.get(k), v) for k, v in theirs.items()):
            return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    if root.port is not None and leaf.port is not None and root.port != leaf.port:
        return True
    if root.source_namespace is not None and leaf.source_namespace != root.source_namespace:
        return True
    if any(
        k in root.source_labels and root.source_labels[k] != v
        for k, v in leaf.source_labels.items()
    ):
        return True
    return bool(root.gateways and leaf.gateways and not set(leaf.gateways) <= set(root.gateways))


def merge_match(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest:
    """The leaf entry with whatever it leaves unset taken from the root entry."""
    name = leaf.name or root.name
    if leaf.name and root.name:
        name = f"{root.name}-{leaf.name}"
    return dataclasses.replace(
        leaf,
        name=name,
        uri=leaf.uri or root.uri,
        scheme=leaf.scheme or root.scheme,
        method=leaf.method or root.method,
        authority=leaf.authority or root.authority,
        headers={**root.headers, **leaf.headers},
        without_headers={**root.without_headers, **leaf.without_headers},
        query_params={**root.query_params, **leaf.query_params},
        port=leaf.port if leaf.port is not None else root.port,
        source_labels={**root.source_labels, **leaf.source_labels},
        source_namespace=leaf.source_namespace or root.source_namespace,
        gateways=leaf.gateways or root.gateways,
    )


def merge_matches(
    root: Sequence[HTTPMatchRequest], leaf: Sequence[HTTPMatchRequest]
) -> tuple[HTTPMatchRequest, ...] | None:
    """Merged entries, or ``None`` on a conflict (``mergeHTTPMatchRequests``)."""
    if not root:
        return tuple(leaf)
    if not leaf:
        return tuple(root)
    out: list[HTTPMatchRequest] = []
    for sub in leaf:
        found = [merge_match(r, sub) for r in root if not has_conflict(r, sub)]
        if not found:
            return None
        out += found
    return tuple(out) or None


def merge_route(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute | None:
    """One delegate rule under its root rule, or ``None`` when their matches conflict."""
    match = merge_matches(root.match, leaf.match)
    if match is None:
        return None
    name = leaf.name or root.name
    if leaf.name and root.name:
        name = f"{root.name}-{leaf.name}"
    return dataclasses.replace(
        leaf,
        name=name,
        match=match,
        rewrite=leaf.rewrite or root.rewrite,
        direct_response=leaf.direct_response or root.direct_response,
        timeout=leaf.timeout if leaf.timeout is not None else root.timeout,
        retries=leaf.retries or root.retries,
        fault=leaf.fault or root.fault,
        mirrors=leaf.mirrors or root.mirrors,
        cors_policy=leaf.cors_policy or root.cors_policy,
        headers=leaf.headers or root.headers,
    )


def expand_delegates(virtual_services: Sequence[VirtualService]) -> tuple[VirtualService, ...]:
    """Every VirtualService with its ``delegate`` rules replaced by the merged delegate rules."""
    delegates = {(vs.namespace, vs.name): vs for vs in virtual_services if vs.is_delegate}
    out = []
    for vs in virtual_services:
        if not any(r.delegate is not None for r in vs.http):
            out.append(vs)
            continue
        http: list[HTTPRoute] = []
        for r in vs.http:
            if r.delegate is None:
                http.append(r)
                continue
            d = delegates.get((r.delegate.namespace, r.delegate.name))
            if d is None or not exported_to(d.export_to, d.namespace, vs.namespace):
                continue
            http += [m for leaf in d.http if (m := merge_route(r, leaf)) is not None]
        out.append(dataclasses.replace(vs, http=tuple(http)))
    return tuple(out)
