"""Access-log lines in Istio's default TEXT format, or one JSON object per line.

Field order follows Istio's default (Envoy's default plus ``%RESPONSE_CODE_DETAILS%`` and the
upstream/downstream details), with chaoskit's attempt count and injected faults appended, so a
line from chaoskit reads like a line from a sidecar. Only fields chaoskit knows are filled;
the rest are ``-`` as Envoy prints them. Header values such as ``Authorization`` or ``Cookie``
are never logged.
"""

from __future__ import annotations

import datetime
import json

from chaoskit.records import Record, format_flags


def _iso(ts: float) -> str:
    return (
        datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )  # fmt: skip


def _q(value: str) -> str:
    return '"' + (value or "-").replace('"', '\\"') + '"'


def _service_ms(record: Record) -> int | None:
    if not record.attempts or record.attempts[-1].status is None:
        return None
    return int(record.attempts[-1].duration * 1000)


def _upstream_service_time(record: Record) -> str:
    ms = _service_ms(record)
    return "-" if ms is None else str(ms)


def _all_faults(record: Record) -> list[str]:
    """VirtualService faults (``delay``/``abort``) and every UpstreamFault an attempt got."""
    out = list(record.faults)
    for attempt in record.attempts:
        out.extend(f for f in attempt.faults if f not in out)
    return out


def format_text(record: Record) -> str:
    """``[START] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS ...`` (Istio's default format)."""
    fields = [
        f"[{_iso(record.start)}]",
        f'"{record.method} {record.path} HTTP/1.1"',
        str(record.status),
        format_flags(record.flags),
        record.details or "-",
        "-",  # connection termination details
        _q(""),  # upstream transport failure reason
        str(record.bytes_received),
        str(record.bytes_sent),
        str(int(record.duration * 1000)),
        _upstream_service_time(record),
        _q(""),  # x-forwarded-for
        _q(record.user_agent),
        _q(record.request_id),
        _q(record.authority),
        _q(record.upstream_host),
        record.cluster or "-",
        "-",  # upstream local address
        "-",  # downstream local address
        "-",  # downstream remote address
        "-",  # requested server name
        record.route_name or "-",
        f"attempts={len(record.attempts)}",
        "faults=" + (",".join(_all_faults(record)) or "-"),
        "source=" + (record.source or "-"),
    ]
    return " ".join(fields)


def format_json(record: Record) -> str:
    """Istio's JSON access-log keys, plus ``attempts``, ``faults`` and ``source_workload``."""
    return json.dumps(
        {
            "start_time": _iso(record.start),
            "method": record.method,
            "path": record.path,
            "protocol": "HTTP/1.1",
            "response_code": record.status,
            "response_flags": format_flags(record.flags),
            "response_code_details": record.details or None,
            "bytes_received": record.bytes_received,
            "bytes_sent": record.bytes_sent,
            "duration": int(record.duration * 1000),
            "upstream_service_time": _service_ms(record),
            "user_agent": record.user_agent or None,
            "request_id": record.request_id,
            "authority": record.authority,
            "upstream_host": record.upstream_host or None,
            "upstream_cluster": record.cluster or None,
            "route_name": record.route_name or None,
            "listener": record.listener,
            "source_workload": record.source or None,
            "attempts": [
                {
                    "endpoint": a.endpoint,
                    "outcome": a.outcome,
                    "status": a.status,
                    "duration_ms": round(a.duration * 1000, 1),
                    "faults": list(a.faults),
                }
                for a in record.attempts
            ],
            "faults": _all_faults(record),
        },
        separators=(",", ":"),
    )
