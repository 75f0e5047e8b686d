"""The enforcement core on mitmproxy: the only package that imports mitmproxy.

``replies``, ``pipeline`` and ``upstream`` hold the request path; ``core`` is the mitmproxy addon
that adapts flows to it; ``runtime`` hosts it in a lean Master (CLI, Python API) and ``script``
makes the same addon loadable with ``mitmdump -s``.
"""
