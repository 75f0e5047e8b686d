"""Pure routing: which VirtualService rule and which destination a request takes.

Nothing here imports mitmproxy: the proxy adapts a flow into a :class:`RequestInfo` and turns
the router's decision back into flow mutations.
"""

from chaoskit.routing.decision import (
    ClusterKey,
    ClusterNotFound,
    Decision,
    Forward,
    LocalReply,
    Mirror,
    NoRoute,
    Passthrough,
)
from chaoskit.routing.headers import HeaderContext, HeaderOp, HeaderPlan
from chaoskit.routing.headers import apply as apply_headers
from chaoskit.routing.matcher import matches, route_matches
from chaoskit.routing.request import ANONYMOUS, RequestInfo, Workload, split_authority
from chaoskit.routing.router import Listener, Router

__all__ = [
    "ANONYMOUS",
    "ClusterKey",
    "ClusterNotFound",
    "Decision",
    "Forward",
    "HeaderContext",
    "HeaderOp",
    "HeaderPlan",
    "Listener",
    "LocalReply",
    "Mirror",
    "NoRoute",
    "Passthrough",
    "RequestInfo",
    "Router",
    "Workload",
    "apply_headers",
    "matches",
    "route_matches",
    "split_authority",
]
