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


class FlowAnnotator:
    def annotate(self, flow: http.HTTPFlow, record: Record) -> None:
        """Called by the enforcer with each answered flow and its record."""
        flow.metadata["chaoskit"] = record.to_dict()
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
