"""chaoskit inside stock mitmproxy::

    mitmdump -s "$(python -c 'import chaoskit.proxy.script as s; print(s.__file__)')" \\
        --set chaoskit_config=mesh/ [--set chaoskit_seed=42]
    mitmweb  -s ... (same options; flows are marked and commented with route, endpoint, faults)

The same :class:`~chaoskit.proxy.core.ChaosCore` as ``chaoskit proxy``; mitmproxy's own
listener is the mesh listener. Add ``--mode reverse:http://127.0.0.1:9@8080`` to serve a
Gateway whose HTTP server is on port 8080.

Downstream limits (:mod:`chaoskit.proxy.limits`): ``--set chaoskit_max_connections=N`` (default:
derived from the open-files limit) and ``--set chaoskit_request_headers_timeout=10s`` (``0``:
off).
"""

from chaoskit.proxy import patches
from chaoskit.proxy.core import ChaosCore, default_addons

patches.apply()  # before mitmproxy handles a connection: the codec guards, the body budget
addons = default_addons(ChaosCore())
