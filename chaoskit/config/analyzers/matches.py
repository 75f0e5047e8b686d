"""VirtualService rules and match entries that can never be used (IST0130, IST0131).

Mirrors istio/istio ``pkg/config/validation/validation.go`` ``analyzeUnreachableHTTPRules``, which
``istioctl analyze`` reports as VirtualServiceUnreachableRule (IST0130) and
VirtualServiceIneffectiveMatch (IST0131):

- a rule after one that matches every request is unreachable (Istio: after a rule without
  ``match``; chaoskit also counts a rule with a catch-all entry such as ``uri: {prefix: /}``);
- a match entry equal to an earlier one (its ``name`` aside) is never used, and a rule all of
  whose entries are used by earlier rules is unreachable;
- a ``uri.prefix`` entry covered by an earlier ``uri.prefix`` entry (``/api/v1/products`` after
  ``/api/v1/product``) is never used. Istio compares the other conditions as text (port, method,
  authority, headers, query parameters, withoutHeaders; a missing method counts as GET). chaoskit
  reports an entry only when every request it matches is matched by the earlier entry, over all
  conditions: it skips Istio's false positives (an earlier entry narrowed by ``sourceLabels`` or
  ``scheme``) and finds the covers Istio's comparison misses (an earlier entry with fewer
  conditions, or the same prefix).

TCP and TLS rules get the same analysis without the prefix cover, as in Istio's
``analyzeUnreachableTCPRules`` and ``analyzeUnreachableTLSRules``: after a rule without ``match``
(the last one allowed), every later match entry is unreachable, and equal entries are duplicates.

Istio applies such configurations; the entries are dead weight, so these are warnings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from chaoskit.config.http_route import HTTPRoute
from chaoskit.config.issues import Issues
from chaoskit.config.match import HTTPMatchRequest, StringMatch
from chaoskit.config.mesh import Mesh
from chaoskit.config.virtual_service import L4Match, L4Route, VirtualService

UNREACHABLE_RULE = "IST0130"
INEFFECTIVE_MATCH = "IST0131"


def implies(a: StringMatch | None, b: StringMatch | None) -> bool:
    """Every value ``b`` accepts, ``a`` accepts (``None``: no condition)."""
    if a is None or a == b:
        return True
    if b is None:
        return False
    if a.kind == "present":
        return True
    if a.kind not in ("exact", "prefix") or b.kind not in ("exact", "prefix"):
        return False
    if b.ignore_case and not a.ignore_case:
        return False
    av, bv = (a.value.lower(), b.value.lower()) if a.ignore_case else (a.value, b.value)
    if a.kind == "exact":
        return b.kind == "exact" and av == bv
    return bv.startswith(av)


def _all_implied(a: Mapping[str, StringMatch], b: Mapping[str, StringMatch]) -> bool:
    return all(k in b and implies(v, b[k]) for k, v in a.items())


def covers(a: HTTPMatchRequest, b: HTTPMatchRequest) -> bool:
    """Every request ``b`` matches, ``a`` matches too."""
    return (
        implies(a.uri, b.uri)
        and implies(a.scheme, b.scheme)
        and implies(a.method, b.method)
        and implies(a.authority, b.authority)
        and _all_implied(a.headers, b.headers)
        and _all_implied(a.query_params, b.query_params)
        # withoutHeaders k: v rejects what v accepts; b rejects at least that when w ⊇ v.
        and all(
            k in b.without_headers and implies(b.without_headers[k], v)
            for k, v in a.without_headers.items()
        )
        and (a.port is None or a.port == b.port)
        and a.source_labels.items() <= b.source_labels.items()
        and (a.source_namespace is None or a.source_namespace == b.source_namespace)
        and (not a.gateways or (bool(b.gateways) and set(b.gateways) <= set(a.gateways)))
    )


def _is_prefix(m: HTTPMatchRequest) -> bool:
    return m.uri is not None and m.uri.kind == "prefix"


@dataclasses.dataclass(frozen=True, slots=True)
class _Seen:
    rule: int
    entry: int
    match: HTTPMatchRequest

    @property
    def where(self) -> str:
        return f"http[{self.rule}].match[{self.entry}]"


def _warn(
    issues: Issues, vs: VirtualService, route: HTTPRoute, path: str, text: str, code: str
) -> None:
    issues.warning(route.location, vs.ref, f"spec.http[{route.index}]{path}", text, code=code)


def analyze_virtual_service(vs: VirtualService, issues: Issues) -> None:
    catch_all: HTTPRoute | None = None
    seen: list[_Seen] = []
    for route in vs.http:
        if catch_all is not None:
            text = f"rule is unreachable: http[{catch_all.index}] before it matches every request"
            _warn(issues, vs, route, "", text, UNREACHABLE_RULE)
            continue
        if route.is_catch_all and route.delegate is None:
            catch_all = route
        used_before = 0
        for j, m in enumerate(route.match):
            unnamed = dataclasses.replace(m, name=None)
            dup = next((s for s in seen if s.match == unnamed), None)
            cover = None
            if dup is None and _is_prefix(m):
                cover = next((s for s in seen if _is_prefix(s.match) and covers(s.match, m)), None)
            earlier = dup or cover
            if earlier is None:
                seen.append(_Seen(route.index, j, unnamed))
                continue
            if dup is not None:
                text = f"match is never used: it duplicates {dup.where}"
            else:
                assert earlier.match.uri is not None and m.uri is not None
                text = (
                    f"match is never used: {earlier.where} (prefix {earlier.match.uri.value!r}) "
                    f"before it matches every request it matches (prefix {m.uri.value!r})"
                )
            _warn(issues, vs, route, f".match[{j}]", text, INEFFECTIVE_MATCH)
            if earlier.rule != route.index:
                used_before += 1
        if route.match and used_before == len(route.match):
            text = "rule is unreachable: every match entry is used by an earlier rule"
            _warn(issues, vs, route, "", text, UNREACHABLE_RULE)


def analyze_l4(vs: VirtualService, kind: str, routes: tuple[L4Route, ...], issues: Issues) -> None:
    """``tcp`` or ``tls`` rules, as Istio's ``analyzeUnreachableTCPRules``."""
    empty: L4Route | None = None
    seen: dict[L4Match, tuple[int, int]] = {}

    def warn(route: L4Route, path: str, text: str, code: str) -> None:
        issues.warning(route.location, vs.ref, f"spec.{kind}[{route.index}]{path}", text, code=code)

    for route in routes:
        if not route.match:
            if empty is not None:
                text = (
                    f"rule is unreachable: {kind}[{empty.index}] before it has no match either "
                    "(only the last rule can have no matches)"
                )
                warn(route, "", text, UNREACHABLE_RULE)
            empty = route
            continue
        used = 0
        for j, m in enumerate(route.match):
            if empty is not None:
                text = f"match is unreachable: {kind}[{empty.index}] before it has no match"
                warn(route, f".match[{j}]", text, UNREACHABLE_RULE)
                continue
            if m in seen:
                rule, entry = seen[m]
                text = f"match is never used: it duplicates {kind}[{rule}].match[{entry}]"
                warn(route, f".match[{j}]", text, INEFFECTIVE_MATCH)
                used += 1
            else:
                seen[m] = (route.index, j)
        if used == len(route.match):
            text = "rule is unreachable: every match entry is used by an earlier rule"
            warn(route, "", text, UNREACHABLE_RULE)


def analyze(mesh: Mesh, issues: Issues) -> None:
    for vs in mesh.virtual_services:
        analyze_virtual_service(vs, issues)
        analyze_l4(vs, "tcp", vs.tcp, issues)
        analyze_l4(vs, "tls", vs.tls, issues)
