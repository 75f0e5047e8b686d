"""What mitmweb (or ``mitmdump -s``) shows of chaoskit on each flow: the route, the endpoint,
anything injected, and the whole record in ``flow.metadata["chaoskit"]``.

Only for a UI or a flow file that shows it: the record's deep copy into ``flow.metadata`` costs
CPU on every request, so the lean runtime leaves this addon out unless it serves the web UI.
"""

from __future__ import annotations

from mitmproxy import http

from chaoskit.records import Record


class FlowAnnotator:
    def annotate(self, flow: http.HTTPFlow, record: Record) -> None:
        """Called by the enforcer with each answered flow and its record."""
        flow.metadata["chaoskit"] = record.to_dict()
        parts = [f"route {record.route_name or '-'}", f"cluster {record.cluster or '-'}"]
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
