"""Credentials never reach a file chaoskit writes: journals, reports, JUnit, access logs.

What counts as a credential is decided by *name*, from one table (:data:`CREDENTIAL_NAMES`,
:data:`CREDENTIAL_SUFFIXES`, :data:`QUERY_ONLY_NAMES`), case-insensitively and with ``-`` and
``_`` taken as the same character. It covers the HTTP authentication and session headers, and
the names the common scrubbers treat as secrets (Sentry's default denylist and server-side
scrubbing, OWASP's logging cheat sheet: passwords, secrets, API keys, tokens, signatures,
session ids). A value is replaced by :data:`REDACTED` wherever its name says it is one:

- a header or key in configuration (a traffic target's ``headers``, a VirtualService header
  or query-parameter match, a header operation), at any depth;
- ``name: value`` / ``name=value`` in free text (an error message, command output);
- a query parameter of any URL or path (``?api_key=…``, ``&access_token=…``, ``;jsessionid=…``);
- the password of a URL with user info (``http://user:secret@host/``).

Everything around a value is kept, so a redacted configuration still reads as the YAML that
ran, and a redacted URL still shows which parameters were sent. Records in memory
(``proxy.records``) are left whole: tests may assert on them; the files are what leak.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import yaml

REDACTED = "<redacted>"

# -- the table: what is a credential, by name ------------------------------------------------
# Names are compared lower-cased, with "_" read as "-" (X-Api-Key = x_api_key = X-API-KEY).

#: Exact names, as headers, configuration keys, free-text labels and query parameters.
CREDENTIAL_NAMES = frozenset({
    # HTTP authentication and sessions (RFC 9110 §11, RFC 6265)
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    # API keys, tokens and passwords by their usual bare names
    "apikey", "token", "auth", "password", "passwd", "pwd", "secret", "credentials",
    "signature", "x-hub-signature-256", "csrftoken", "x-csrftoken",
    # session ids carried outside a cookie
    "session", "sessionid", "session-id", "jsessionid", "phpsessid",
})  # fmt: skip
#: Any name ending in one of these: x-api-key, api_key, x-goog-api-key, x-apikey,
#: x-auth-token, access_token, refresh_token, x-amz-security-token, x-csrf-token,
#: client_secret, db-password, x-amz-signature, x-hub-signature, x-amz-credential,
#: x-registry-auth, x-session-id.
CREDENTIAL_SUFFIXES = (
    "-key", "-apikey", "-token", "-secret", "-password", "-passwd", "-signature",
    "-credential", "-auth", "-session", "-session-id",
)  # fmt: skip
#: Credentials only as query parameters: as labels in prose or configuration they are
#: ordinary words (``key: value``), in a URL they are Google's API key, a signature, a
#: session id.
QUERY_ONLY_NAMES = frozenset({"key", "sig", "sid"})


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def is_credential(name: str, *, query: bool = False) -> bool:
    """Whether a header, key or label ``name`` (or, with ``query``, a query parameter) names
    a credential, by the table above."""
    n = _norm(name)
    return (
        n in CREDENTIAL_NAMES
        or n.endswith(CREDENTIAL_SUFFIXES)
        or (query and n in QUERY_ONLY_NAMES)
    )


def _name_pattern() -> str:
    """The table as a regular expression over names (for free text and the YAML pre-check)."""
    sep = "[-_]"
    exact = sorted((n.replace("-", sep) for n in CREDENTIAL_NAMES), key=len, reverse=True)
    suffixes = "|".join(s[1:].replace("-", sep) for s in CREDENTIAL_SUFFIXES)
    return rf"(?<![\w-])(?:{'|'.join(exact)}|[\w-]*{sep}(?:{suffixes}))"


_NAME = _name_pattern()
_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)+")
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@")
#: ``?name=value``, ``&name=value``, ``;name=value``: a value ends where no token goes on
#: (``&``, ``#``, ``?``, ``;``, ``,``, white space, quotes, brackets, a backslash).
_QUERY_PARAM = re.compile(
    r"(?P<head>[?&;](?P<name>[^=&#;?\s\"'<>]{1,100})=)(?P<value>[^&#;?\s\"'<>,)\]}\\]+)"
)
_HEADER_TEXT = re.compile(
    rf"(?P<key>[\"']?{_NAME}[\"']?[ \t]*[:=][ \t]*)"
    r"(?:(?P<q>[\"'])(?P<quoted>[^\"'\n]*)(?P=q)|(?P<plain>(?![{\[<])[^\s,}\]][^\n,}\]]*))",
    re.IGNORECASE,
)
_ANY_NAME = re.compile(_NAME, re.IGNORECASE)


def _query_param(m: re.Match[str]) -> str:
    name = m["name"]
    if not is_credential(unquote(name) if "%" in name else name, query=True):
        return m[0]
    return m["head"] + REDACTED


def redact_query(text: str) -> str:
    """Credential query parameters anywhere in ``text`` (a path, a URL, a log line):
    ``/cb?code=1&access_token=abc`` → ``/cb?code=1&access_token=<redacted>``."""
    if "=" not in text:
        return text
    return _QUERY_PARAM.sub(_query_param, text)


def redact_url(text: str) -> str:
    """URLs anywhere in text: ``scheme://user:secret@host`` → ``scheme://user:<redacted>@host``,
    and credential query parameters (:func:`redact_query`)."""
    if "@" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", text)
    return redact_query(text)


def _header_text(m: re.Match[str]) -> str:
    if m["q"] is not None:
        return f"{m['key']}{m['q']}{REDACTED}{m['q']}"
    return f"{m['key']}{REDACTED}"


def redact_text(text: str) -> str:
    """Free text (an error message, command output): ``Authorization: …`` and similar
    ``name: value`` / ``'name': 'value'`` spellings, and URL passwords."""
    if not text:
        return text
    return _HEADER_TEXT.sub(_header_text, redact_url(text))


def _scalar_spans(node: yaml.Node, out: list[tuple[int, int]], seen: set[int]) -> None:
    """Every scalar value under ``node`` (not mapping keys: ``exact``, ``regex`` stay), as
    (start, end) indexes in the text."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        out.append((node.start_mark.index, node.end_mark.index))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _scalar_spans(item, out, seen)
    elif isinstance(node, yaml.MappingNode):
        for _key, value in node.value:
            _scalar_spans(value, out, seen)


def _sensitive_spans(
    node: yaml.Node, out: list[tuple[int, int]], seen: set[int], query: bool = False
) -> None:
    """Spans of every value found under a key that names a credential (``query``: the keys
    are query parameter names, as under a VirtualService's ``queryParams`` match)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _sensitive_spans(item, out, seen)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else ""
            if name and is_credential(name, query=query):
                _scalar_spans(value, out, set())
            else:
                _sensitive_spans(value, out, seen, query=name == "queryParams")


def redact_yaml(text: str) -> str:
    """YAML (or JSON) with every credential header value replaced, comments and layout kept.

    Works on the parsed node tree, so ``authorization: {exact: "Bearer x"}``, block mappings,
    quoted, folded and anchored values are all found. Text that is not valid YAML falls back
    to :func:`redact_text`.
    """
    if not text:
        return text
    if not _ANY_NAME.search(text) and "queryParams" not in text:
        return redact_url(text)
    spans: list[tuple[int, int]] = []
    try:
        for doc in yaml.compose_all(text, Loader=yaml.SafeLoader):
            if doc is not None:
                _sensitive_spans(doc, spans, set())
    except yaml.YAMLError:
        return redact_text(text)
    out = text
    for begin, end in sorted(set(spans), reverse=True):
        value = out[begin:end].rstrip()  # a block scalar's span ends after its line breaks
        keep = _PROPERTIES.match(value)  # an anchor or tag before the value stays
        start = begin + (keep.end() if keep else 0)
        value = value[start - begin :]
        if value.strip() in ("", REDACTED):
            continue
        out = out[:start] + REDACTED + out[start + len(value) :]
    return redact_url(out)
