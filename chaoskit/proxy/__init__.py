"""The enforcement core on mitmproxy: the only package that imports mitmproxy.

``replies``, ``pipeline`` and ``upstream`` hold the request path; ``core`` is the mitmproxy addon
that adapts flows to it; ``runtime`` hosts it in a lean Master (CLI, Python API) and ``script``
makes the same addon loadable with ``mitmdump -s``.
"""

from chaoskit.proxy import deferred_addons

# Before any module of this package imports mitmproxy: mitmproxy's default addons, which the
# lean Master never uses, are then imported only if something asks for them (deferred_addons).
deferred_addons.defer()
