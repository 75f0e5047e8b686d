"""Turning what users hand us — paths, YAML text, dicts, resource objects — into a validated mesh.

Used by ``chaoskit.Proxy(...)``, ``proxy.apply(...)`` and the pytest plugin, so every entry point
accepts the same things and reports problems the same way (:class:`~chaoskit.errors.ConfigError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from chaoskit.config import Validation, validate
from chaoskit.config.issues import Issues
from chaoskit.config.loader import LoadResult, load_paths, load_text
from chaoskit.config.resource import Resource
from chaoskit.errors import ConfigError


def _looks_like_yaml(text: str) -> bool:
    return "\n" in text or text.lstrip().startswith(("apiVersion", "{", "-", "kind"))


def _exists(text: str) -> bool:
    """Is ``text`` an existing path? YAML text is no file name (too long, a NUL byte, …)."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def to_results(sources: Iterable[Any], label: str = "<apply>") -> list[LoadResult]:
    """Load each source in order; later ones are layered over earlier ones."""
    out: list[LoadResult] = []
    for i, source in enumerate(sources):
        name = f"{label}[{i}]"
        if isinstance(source, Resource):
            out.append(LoadResult((source,), Issues(), (source.location.file,)))
        elif isinstance(source, Mapping):
            out.append(load_text(json.dumps(source), name))
        elif isinstance(source, os.PathLike):
            out.append(load_paths([source]))
        elif isinstance(source, str):
            if _looks_like_yaml(source) and not _exists(source):
                out.append(load_text(source, name))
            else:
                out.append(load_paths([source]))
        elif isinstance(source, Iterable) and not isinstance(source, bytes):
            out.extend(to_results(source, name))
        else:
            raise TypeError(
                f"cannot load {type(source).__name__}: pass a path, YAML text, a dict or a resource"
            )
    return out


def validated(*sources: Any, base: Iterable[LoadResult] = ()) -> Validation:
    """Validate ``sources`` layered over ``base``; raise :class:`ConfigError` on any error."""
    v = validate([*base, *to_results(sources)])
    if not v.ok:
        raise ConfigError(v.issues.sorted())
    return v
