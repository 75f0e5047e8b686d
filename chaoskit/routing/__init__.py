"""Pure routing: which VirtualService rule and which destination a request takes.

Nothing here imports mitmproxy: the proxy adapts a flow into a :class:`RequestInfo` and turns
the router's decision back into flow mutations.
"""
