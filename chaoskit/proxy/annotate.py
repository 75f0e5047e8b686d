"""What mitmweb (or ``mitmdump -s``) shows of chaoskit on each flow: the route, the endpoint,
anything injected, and the whole record in ``flow.metadata["chaoskit"]``.

Only for a UI or a flow file that shows it: the record's deep copy into ``flow.metadata`` costs
CPU on every request, so the lean runtime leaves this addon out unless it serves the web UI.
"""

from __future__ import annotations

from mitmproxy import http

from chaoskit.records import Record


def caller(record: Record) -> str:
    """Who sent the request, first in the comment: a request's caller decides its Sidecar scope
    and ``sourceLabels`` matches, and mitmweb shows no proxy credentials to tell callers apart."""
    who = f"from {record.source}" if record.source else "from an anonymous caller"
    if record.listener != "mesh":  # "gateway:<port>": the Gateway's own listener
        return f"{who} via {record.listener.replace(':', ' ')}"
    return who


def show_gateway_address(flow: http.HTTPFlow) -> None:
    """A Gateway's request shows the port the client called, not the reverse-proxy mode's
    placeholder target (``127.0.0.1:9``, never dialled: chaoskit answers every flow itself).

    Only for display, once the flow is answered; the Host header is left as the client sent it
    (``request.port = …`` would rewrite it)."""
    sockname = flow.client_conn.sockname
    if sockname:
        flow.request.data.port = int(sockname[1])


class FlowAnnotator:
    def annotate(self, flow: http.HTTPFlow, record: Record) -> None:
        """Called by the enforcer with each answered flow and its record."""
        flow.metadata["chaoskit"] = record.to_dict()
        if record.listener != "mesh":
            show_gateway_address(flow)
        parts = [
            caller(record),
            f"route {record.route_name or '-'}",
            f"cluster {record.cluster or '-'}",
        ]
        if record.upstream_host:
            parts.append(f"endpoint {record.upstream_host}")
        if record.flags:
            parts.append("flags " + ",".join(record.flags))
        if record.faults:
            parts.append("injected " + ",".join(record.faults))
        if len(record.attempts) > 1:
            parts.append(f"{len(record.attempts)} attempts")
        flow.comment = "; ".join(parts)
        if record.faults or record.flags:
            flow.marked = ":warning:"
