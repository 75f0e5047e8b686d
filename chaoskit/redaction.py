"""Credentials never reach a file chaoskit writes: journals, reports, access logs, records.

What counts as a credential: the values of the ``Authorization``, ``Proxy-Authorization``,
``Cookie`` and ``Set-Cookie`` headers wherever they are spelled out (a traffic target's
``headers``, a VirtualService header match or header operation, a line of free text), and the
password of a URL with user info (``http://user:secret@host/``). Each becomes
:data:`REDACTED`; everything around it is kept, so a redacted configuration still reads as
the YAML that ran.

The access log and records never held header values in the first place (a record keeps the
authority, path and user agent, and :func:`chaoskit.proxy.pipeline.without_userinfo` drops user
info from the authority); this module is for the text that comes from configuration files and
from the outside (error messages, command output).
"""

from __future__ import annotations

import re

import yaml

REDACTED = "<redacted>"
#: Header names (lower case) whose values are credentials.
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)+")
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+@")
_HEADER_TEXT = re.compile(
    r"(?P<key>[\"']?\b(?:proxy-authorization|authorization|set-cookie|cookie)[\"']?"
    r"[ \t]*[:=][ \t]*)"
    r"(?:(?P<q>[\"'])(?P<quoted>[^\"'\n]*)(?P=q)|(?P<plain>(?![{\[<])[^\s,}\]][^\n,}\]]*))",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:<redacted>@host`` (anywhere in text)."""
    if "@" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", text)


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


def _sensitive_spans(node: yaml.Node, out: list[tuple[int, int]], seen: set[int]) -> None:
    """Spans of every value found under a key that names a credential header."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _sensitive_spans(item, out, seen)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and str(key.value).lower() in SENSITIVE_HEADERS:
                _scalar_spans(value, out, set())
            else:
                _sensitive_spans(value, out, seen)


def redact_yaml(text: str) -> str:
    """YAML (or JSON) with every credential header value replaced, comments and layout kept.

    Works on the parsed node tree, so ``authorization: {exact: "Bearer x"}``, block mappings,
    quoted, folded and anchored values are all found. Text that is not valid YAML falls back
    to :func:`redact_text`.
    """
    if not text:
        return text
    lowered = text.lower()
    if not any(h in lowered for h in SENSITIVE_HEADERS):
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
