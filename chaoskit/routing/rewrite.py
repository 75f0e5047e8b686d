"""Path rewrites and redirect locations, as Envoy computes them from Istio's translation.

``rewrite.uri`` becomes Envoy's ``prefix_rewrite``: it replaces the part of the path the route
*matched* — the ``prefix`` of a prefix match, the whole path for an ``exact`` or ``regex``
match, and the implicit prefix ``/`` when the entry has no ``uri`` (so ``/foo`` rewritten with
``/v1`` becomes ``/v1foo``). ``uriRegexRewrite`` is Envoy's ``regex_rewrite``: every match in
the path is substituted (RE2 ``\\1`` groups). The query string is always kept.

Redirects follow Envoy's ``Utility::newUri`` with Istio's port translation (``ApplyRedirect``):
``uri`` replaces the path (the request's query is appended unless ``uri`` has its own),
``prefixRewrite`` replaces the matched prefix, ``port`` / ``derivePort: FROM_REQUEST_PORT`` set
the port, except the scheme's default (80 for http, 443 for https), which Istio drops. Without
an explicit port the request Host keeps its own port — unless the scheme changes and that port
was the old scheme's default — so ``port: 443`` on a request to ``a.com:8080`` gives
``https://a.com:8080/…``, exactly as Envoy does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from chaoskit.config.http_route import HTTPRedirect, RegexRewrite
from chaoskit.config.match import HTTPMatchRequest

_RE2_GROUP = re.compile(r"\\(\d|\\)")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def join(path: str, query: str) -> str:
    """``/a`` + ``x=1`` → ``/a?x=1``."""
    return f"{path}?{query}" if query else path


def matched_length(match: HTTPMatchRequest | None, path: str) -> int:
    """How much of ``path`` a prefix rewrite replaces for this match entry."""
    uri = None if match is None else match.uri
    if uri is None or uri.kind == "present":
        return 1 if path.startswith("/") else 0  # Istio's implicit ``prefix: /``
    if uri.kind == "prefix":
        return len(uri.value)
    return len(path)  # exact and regex matched the whole path


def prefix_rewrite(path: str, query: str, match: HTTPMatchRequest | None, new_prefix: str) -> str:
    """Envoy ``prefix_rewrite``: the matched prefix becomes ``new_prefix``; query kept."""
    return join(new_prefix + path[matched_length(match, path) :], query)


def re2_substitution(template: str) -> Callable[[re.Match[str]], str]:
    """An RE2 rewrite string (``\\1``, ``\\\\``) as a function for :meth:`re.Pattern.sub`."""

    def expand(m: re.Match[str]) -> str:
        def group(g: re.Match[str]) -> str:
            if g.group(1) == "\\":
                return "\\"
            n = int(g.group(1))
            return (m.group(n) or "") if n <= m.re.groups else ""

        return _RE2_GROUP.sub(group, template)

    return expand


def regex_rewrite(path: str, query: str, rule: RegexRewrite) -> str:
    """Envoy ``regex_rewrite``: substitute every match in the path; query kept."""
    return join(rule.match.sub(re2_substitution(rule.rewrite), path), query)


def _request_host(authority: str, new_scheme: str, new_port: str, request_scheme: str) -> str:
    """Envoy's ``processRequestHost``: drop the Host's port when a new port is set, or when
    the scheme changes and the port was the old scheme's default."""
    if not authority:
        return authority
    if authority.startswith("["):
        end = authority.rfind("]:")
        cut = end + 1 if end >= 0 else -1
    else:
        cut = authority.rfind(":")
    if cut < 0:
        return authority
    port = authority[cut:]
    remove = bool(new_port)
    if new_scheme != request_scheme:
        remove = remove or (request_scheme == "https" and port == ":443")
        remove = remove or (request_scheme == "http" and port == ":80")
    return authority[:cut] if remove else authority


def redirect_port(redirect: HTTPRedirect, listener_port: int, *, tls: bool = False) -> int | None:
    """Istio's ``PortRedirect``: ``None`` when the Location carries no explicit port."""
    if redirect.port is not None:
        port = redirect.port
    elif redirect.derive_port == "FROM_REQUEST_PORT":
        port = listener_port
    else:
        return None
    scheme = redirect.scheme or ("https" if tls else "http")
    return None if _DEFAULT_PORTS.get(scheme) == port else port


def redirect_location(
    redirect: HTTPRedirect,
    *,
    scheme: str,
    authority: str,
    path: str,
    query: str,
    match: HTTPMatchRequest | None,
    listener_port: int,
    tls: bool = False,
) -> str:
    """The ``Location`` of a ``redirect`` rule for this request."""
    final_scheme = redirect.scheme or scheme
    port = redirect_port(redirect, listener_port, tls=tls)
    final_port = f":{port}" if port is not None else ""
    host = redirect.authority or _request_host(authority, final_scheme, final_port, scheme)
    if redirect.prefix_rewrite:  # Istio treats an empty prefixRewrite as unset
        final_path = prefix_rewrite(path, query, match, redirect.prefix_rewrite)
    elif redirect.uri:
        final_path = redirect.uri if "?" in redirect.uri else join(redirect.uri, query)
    else:
        final_path = join(path, query)
    if not final_path.startswith("/"):
        final_path = "/" + final_path
    return f"{final_scheme}://{host}{final_port}{final_path}"


def request_url(scheme: str, authority: str, path: str, query: str) -> str:
    """The request's own URL, as Envoy puts it in ``Location`` for a 201/3xx direct response."""
    return f"{scheme}://{_request_host(authority, scheme, '', scheme)}{join(path, query)}"


def https_redirect_location(authority: str, path: str, query: str) -> str:
    """A Gateway server's ``httpsRedirect`` (Envoy ``require_tls: ALL``): Host kept as sent."""
    return f"https://{authority}{join(path, query)}"
