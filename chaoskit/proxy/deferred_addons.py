"""Import ``mitmproxy.addons`` without the default addons chaoskit's lean Master never uses.

``mitmproxy/addons/__init__.py`` imports every default addon (31 in mitmproxy 12.3) so that
``default_addons()`` can list them. Their imports load Flask and Jinja (onboarding), ldap3 and
passlib (proxy auth), Werkzeug (map local) and more. chaoskit's Master uses four addon modules
(``chaoskit.proxy.runtime.make_master``), but the first ``import mitmproxy.addons.core`` (and
``mitmproxy.master`` does such an import) runs that package file and pays for all of them:
about 0.15–0.25 s of every proxy's start-up, the largest single share of a pytest session's
start-up with the plugin (docs/performance.md).

:func:`defer` puts the package into ``sys.modules`` without running its ``__init__``; submodules
still import as usual through its ``__path__``. The first read of an attribute the package does
not have yet (``default_addons``, as mitmweb's Master reads it) runs the real ``__init__`` in
that module, so every name it defines is there from then on. Nothing of mitmproxy's code
changes, only when its modules are imported. Where ``mitmproxy.addons`` is already imported
(``mitmdump -s chaoskit/proxy/script.py``) this does nothing.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
import warnings
from collections.abc import Iterator

PACKAGE = "mitmproxy.addons"

#: (message regex, module regex) of the DeprecationWarnings mitmproxy's dependencies raise when
#: imported: ldap3 (proxy auth) uses pyasn1's old names; passlib imports the stdlib ``crypt``
#: (Python 3.11/3.12). They are theirs, not the user's: under ``filterwarnings = error`` in a
#: test suite they would stop the proxy.
IMPORT_WARNINGS = (
    (r"(tagMap|typeMap) is deprecated", r"ldap3\.utils\.asn1"),
    (r"'crypt' is deprecated", r"passlib\."),
)


@contextlib.contextmanager
def dependency_warnings_silenced() -> Iterator[None]:
    """Ignore exactly :data:`IMPORT_WARNINGS` (any other warning still reaches the filters)."""
    with warnings.catch_warnings():
        for message, module in IMPORT_WARNINGS:
            warnings.filterwarnings("ignore", message, DeprecationWarning, module)
        yield


class _Loader:
    """The package's module ``__getattr__``: runs the real ``__init__`` once, on first need."""

    def __init__(self, module: types.ModuleType, spec: importlib.machinery.ModuleSpec) -> None:
        self.module = module
        self.spec = spec
        self.state = "deferred"  # → "loading" → "loaded"
        self.lock = threading.RLock()

    def __call__(self, name: str) -> object:
        if self.state == "deferred" and self._is_submodule(name):
            # ``from mitmproxy.addons import core`` asks for the attribute before importing the
            # submodule: import just that one, which the real __init__ would have bound too.
            return importlib.import_module(f"{PACKAGE}.{name}")
        with self.lock:
            if self.state == "deferred":
                self.state = "loading"
                try:
                    assert self.spec.loader is not None
                    with dependency_warnings_silenced():
                        self.spec.loader.exec_module(self.module)
                finally:
                    self.state = "loaded"
                    self.module.__dict__.pop("__getattr__", None)
            # "loading": the package's own ``from mitmproxy.addons import x`` probing for ``x``
            # before importing it; "loaded": a name the package really lacks.
        try:
            return self.module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    def _is_submodule(self, name: str) -> bool:
        if name.startswith("__"):
            return False
        path = self.spec.submodule_search_locations
        return importlib.machinery.PathFinder.find_spec(f"{PACKAGE}.{name}", path) is not None


def defer() -> bool:
    """Install ``mitmproxy.addons`` with its ``__init__`` deferred; False if it is already
    imported (or cannot be found), in which case nothing changes."""
    if PACKAGE in sys.modules:
        return False
    parent = importlib.import_module("mitmproxy")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__getattr__ = _Loader(module, spec)  # type: ignore[method-assign,unused-ignore]
    sys.modules[PACKAGE] = module
    parent.addons = module  # type: ignore[attr-defined]  # as the import system would set it
    return True


def is_deferred() -> bool:
    """True while the package's ``__init__`` has not run (for tests and diagnostics)."""
    module = sys.modules.get(PACKAGE)
    return module is not None and isinstance(module.__dict__.get("__getattr__"), _Loader)
