"""Every change chaoskit makes to mitmproxy's internals, in one registry, each with a version guard.

chaoskit needs a few behaviours mitmproxy's public addon API does not give: Envoy's HTTP/1
codec limits below mitmproxy's parser, answering before a request body is read, a hook after a
reply is sent, a descriptor-leak fix, a faster hook dispatch, Envoy's ALPN preference for ``h2``,
a record of what mitmproxy's HTTP/2 layer refuses unseen (extended ``CONNECT``). Each is a
:class:`Patch` of the one table, :data:`~chaoskit.proxy.patch_table.PATCHES`: what it replaces
(``module:Class.attribute``), why (the mitmproxy code it wraps and the behaviour it fixes), and
the fingerprints of the mitmproxy (and h11) code it was written against. The wrappers
themselves live with the logic they serve
(:func:`chaoskit.proxy.guards.wrappers`, :func:`chaoskit.proxy.budget_streams.wrappers`,
:mod:`chaoskit.proxy.dispatch`); nothing is patched at import time. The runtime applies them
explicitly: :func:`apply` for the process-wide patches (idempotent), ``apply(master)`` for a
lean Master's hook dispatch, ``apply(own_process=True)`` where chaoskit owns the process,
``apply(web_master=...)`` for what mitmweb's page shows of the listeners
(:mod:`chaoskit.proxy.web_state`).

**The version guard.** A patch wraps code whose internals mitmproxy may change in any release.
Before a patch is applied, the code it replaces and the code it relies on are fingerprinted
(:func:`fingerprint`: a hash of the source with comments and blank lines left out, so it is
the same on every Python) and looked up among those recorded for the releases chaoskit
supports (mitmproxy 11.0.2 with h11 0.14, 12.0.0–12.3.1 with h11 0.16). An unknown fingerprint
is a mitmproxy chaoskit was not checked against, and the patch is **refused**: the original
stays, an ERROR names the patch, the code that changed and what is off as a result, and
:func:`status` reports it (``python -m chaoskit.proxy.patches`` prints the table). Refusing is
the choice a proxy that must not distort traffic has to make: a wrapper that reaches into a
state machine whose code changed can break every request, while without it mitmproxy keeps its
own (documented, weaker) behaviour for the one hazard the patch covers. Someone who has read
the new code can set ``CHAOSKIT_UNVERIFIED_PATCHES=apply`` to apply them anyway (each still
logged, as a WARNING). ``tests/chaoskit/proxy/test_patches.py`` fails on an unknown
fingerprint, so an upgrade of mitmproxy in the project's own environment cannot go unnoticed:
read the new code, then add its fingerprint (printed by the module's ``main``) here.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import logging
import os
import textwrap
import tokenize
from typing import Any

from chaoskit.proxy.patch_table import PATCHES, SEND_RESPONSE, Code, Patch, Scope, Status

__all__ = [  # the registry's API (the table itself is chaoskit.proxy.patch_table)
    "PATCHES", "SEND_RESPONSE", "Code", "Patch", "Scope", "Status", "applied", "apply",
    "apply_one", "fingerprint", "is_applied", "status",
]  # fmt: skip

logger = logging.getLogger("chaoskit")

#: Set to ``apply`` to apply patches whose mitmproxy code has an unknown fingerprint.
UNVERIFIED_ENV = "CHAOSKIT_UNVERIFIED_PATCHES"
#: The attribute a replacement carries: the name of the patch that installed it.
MARK = "_chaoskit_patch"

_BY_NAME = {patch.name: patch for patch in PATCHES}
#: patch name → what applying it last did
_status: dict[str, Status] = {}
#: (patch name, status) already logged: each is said once per process
_logged: set[tuple[str, Status]] = set()


# -- fingerprints ------------------------------------------------------------------------------


def source_fingerprint(source: str) -> str:
    """A hash of a function's source without its comments, blank lines and indentation
    level: the same text gives the same hash on every Python; a change of code changes it."""
    text = textwrap.dedent(source)
    comments: dict[int, int] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.start[1]
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - hashed as it is
        comments = {}
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        kept = line[: comments[number]] if number in comments else line
        if kept.strip():
            lines.append(kept.rstrip())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def fingerprint(func: Any) -> str | None:
    """The :func:`source_fingerprint` of a function (``None``: its source cannot be read)."""
    try:
        return source_fingerprint(inspect.getsource(func))
    except (OSError, TypeError):
        return None


def resolve(target: str) -> tuple[Any, str, Any]:
    """``"module:Class.attr"`` → (owner, attribute name, current value or ``None``)."""
    module_name, _, qualname = target.partition(":")
    *path, attribute = qualname.split(".")
    try:
        owner: Any = importlib.import_module(module_name)
        for part in path:
            owner = getattr(owner, part)
    except (ImportError, AttributeError):
        return None, attribute, None
    return owner, attribute, getattr(owner, attribute, None)


def original(value: Any) -> Any:
    """What a patch replaced, when ``value`` is a patch's replacement; else ``value``."""
    while getattr(value, MARK, None) is not None and value.__wrapped__ is not value:
        value = value.__wrapped__
    return value


def stacked(value: Any) -> list[str]:
    """The names of the patches stacked on ``value``, outermost first (two patches may wrap
    one function)."""
    names = []
    while getattr(value, MARK, None) is not None:
        names.append(getattr(value, MARK))
        if value.__wrapped__ is value:
            break
        value = value.__wrapped__
    return names


def unknown_code(patch: Patch) -> list[str]:
    """The targets of ``patch`` (what it replaces, what it relies on) whose current code has
    a fingerprint not recorded for them, as ``"target (fingerprint)"``; missing ones too."""
    out = []
    for code in (patch.replaces, *patch.relies_on):
        _, _, value = resolve(code.target)
        if value is None:
            if code is patch.replaces:
                continue  # reported as MISSING / NOT_NEEDED
            out.append(f"{code.target} (missing)")
            continue
        found = fingerprint(original(value))
        if found not in code.known:
            out.append(f"{code.target} ({found or 'no source'})")
    return out


# -- applying ----------------------------------------------------------------------------------


def apply(
    master: Any = None, *, own_process: bool = False, web_master: Any = None
) -> dict[str, Status]:
    """Apply every process-wide patch (idempotent); with ``master``, that Master's patches
    too (call before any addon is added); with ``own_process``, those only a process
    chaoskit owns gets; with ``web_master``, the patches of that mitmweb Master. Returns what
    each patch considered did."""
    result = {}
    for patch in PATCHES:
        if patch.scope is Scope.MASTER and master is None:
            continue
        if patch.scope is Scope.OWN_PROCESS and not own_process:
            continue
        if patch.scope is Scope.WEB:
            if web_master is not None:
                result[patch.name] = apply_one(patch, web_master)
            continue
        result[patch.name] = apply_one(patch, master)
    return result


def apply_one(patch: Patch, master: Any = None) -> Status:
    """Apply one patch (idempotent) if its code is known (see the module docstring)."""
    owner, attribute, value = resolve(patch.replaces.target)
    if not patch.scope.per_master and patch.name in stacked(value):
        return _status.setdefault(patch.name, Status.APPLIED)  # already in place
    if value is None:
        status = Status.NOT_NEEDED if patch.missing_ok else Status.MISSING
        return _record(patch, status, f"{patch.replaces.target} does not exist")
    unknown = unknown_code(patch)
    status = Status.APPLIED
    if unknown:
        if os.environ.get(UNVERIFIED_ENV, "") != "apply":
            return _record(patch, Status.REFUSED, "unknown code: " + ", ".join(unknown))
        status = Status.UNVERIFIED
    install = patch.make()
    if patch.scope.per_master:
        install(master)
    else:
        replacement = install(value)
        replacement.__wrapped__ = value
        setattr(replacement, MARK, patch.name)
        setattr(owner, attribute, replacement)
    detail = "unknown code: " + ", ".join(unknown) if unknown else ""
    return _record(patch, status, detail)


def _record(patch: Patch, status: Status, detail: str) -> Status:
    _status[patch.name] = status
    key = (patch.name, status)
    if key in _logged or status in (Status.APPLIED, Status.NOT_NEEDED):
        return status
    _logged.add(key)
    try:
        from mitmproxy import version  # noqa: PLC0415

        release = f"mitmproxy {version.VERSION}"
    except ImportError:  # pragma: no cover
        release = "mitmproxy (not importable)"
    if status is Status.UNVERIFIED:
        logger.warning(
            "chaoskit: patch %s applied to %s although it was not verified against it (%s=apply;"
            " %s)", patch.name, release, UNVERIFIED_ENV, detail,
        )  # fmt: skip
    else:
        # A web patch changes only what mitmweb's page shows; an ERROR while mitmweb starts
        # would stop it (its ErrorCheck addon), so that refusal is a WARNING.
        log = logger.warning if patch.scope is Scope.WEB else logger.error
        log(
            "chaoskit: patch %s NOT applied on %s (%s): %s. Off as a result: %s Set %s=apply "
            "to apply it anyway.",
            patch.name, release, detail, status.value, patch.why, UNVERIFIED_ENV,
        )  # fmt: skip
    return status


def status() -> dict[str, Status]:
    """What applying each patch did in this process (patches not yet applied are absent)."""
    return dict(_status)


def is_applied(name: str) -> bool:
    """Is the patch ``name`` in place (applied, verified or not)?"""
    if name not in _BY_NAME:
        raise KeyError(f"no patch named {name!r}")
    return _status.get(name) in (Status.APPLIED, Status.UNVERIFIED)


def applied() -> frozenset[str]:
    """The names of the patches in place."""
    return frozenset(name for name in _BY_NAME if is_applied(name))


def main() -> None:
    """``python -m chaoskit.proxy.patches``: each patch, its target, and whether the installed
    mitmproxy's code is one chaoskit knows (the fingerprints to review and record on an
    upgrade)."""
    for patch in PATCHES:
        for code in (patch.replaces, *patch.relies_on):
            _, _, value = resolve(code.target)
            found = fingerprint(original(value)) if value is not None else "missing"
            verdict = code.known.get(found or "", "UNKNOWN") if found else "no source"
            print(f"{patch.name:26} {code.target:68} {found}  {verdict}")


if __name__ == "__main__":  # pragma: no cover
    main()
