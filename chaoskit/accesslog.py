"""Access-log lines in Istio's default TEXT format, or one JSON object per line.

Field order follows Istio's default (Envoy's default plus ``%RESPONSE_CODE_DETAILS%`` and the
upstream/downstream details), with chaoskit's attempt count and injected faults appended, so a
line from chaoskit reads like a line from a sidecar. Only fields chaoskit knows are filled;
the rest are ``-`` as Envoy prints them. Header values such as ``Authorization`` or ``Cookie``
are never logged, and unlike Envoy the path's credential query parameters are redacted
(``?access_token=<redacted>``, :mod:`chaoskit.redaction`). Every request is one line, whatever
bytes it carried: non-UTF-8 bytes and control characters are written as ``\\xNN``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import re

from chaoskit.records import Record, format_flags
from chaoskit.redaction import redact_query


def _iso(ts: float) -> str:
    return (
        datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )  # fmt: skip


#: What would break "one line per request" or a reader's decoding: C0 and C1 controls, DEL,
#: and the Unicode line and paragraph separators.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Surrogates ``surrogateescape`` did not make from a byte (those are U+DC80..U+DCFF).
_NOT_A_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


def _escape_char(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe for one UTF-8 line: bytes that were not UTF-8 as ``\\xNN``, and control
    characters the same way.

    mitmproxy decodes a header or path byte that is not UTF-8 as a lone surrogate
    (``surrogateescape``), which no UTF-8 stream can write: the line used to be dropped.
    Printable text (ASCII or not) is returned as it is, and quickly."""
    if text.isprintable():
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that never was a byte: spell it \uNNNN
        raw = _NOT_A_BYTE.sub(_escape_char, text).encode("utf-8", "surrogateescape")
    return _UNPRINTABLE.sub(_escape_char, raw.decode("utf-8", "backslashreplace"))


def _as_is(text: str) -> str:
    return text


def _needs_escaping(record: Record) -> bool:
    """Whether any string field the JSON line holds is not :func:`printable` as it is."""
    return not "".join(
        (record.method, record.path, record.details, record.user_agent, record.request_id,
         record.authority, record.upstream_host, record.cluster, record.route_name,
         record.listener, record.source)
    ).isprintable()  # fmt: skip


def _path(record: Record) -> str:
    """The path as logged: credential query parameters redacted (chaoskit.redaction's table:
    ``?access_token=<redacted>``), non-UTF-8 bytes escaped."""
    return printable(redact_query(record.path))


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


def _request_line(record: Record) -> str:
    """``"METHOD PATH PROTOCOL"``; ``"- - -"`` for a TCP connection, as Envoy's TCP proxy logs
    one (no request: every HTTP operator prints ``-``)."""
    if record.is_tcp:
        return '"- - -"'
    return f'"{record.method} {_path(record)} {record.protocol}"'


def format_text(record: Record) -> str:
    """``[START] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS ...`` (Istio's default format; a
    TCP connection's line reads like a sidecar's TCP proxy line)."""
    fields = [
        f"[{_iso(record.start)}]",
        _request_line(record),
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
        _q("" if record.is_tcp else record.authority),  # a connection has no :authority
        _q(record.upstream_host),
        record.cluster or "-",
        record.upstream_local_address or "-",
        record.downstream_local_address or "-",
        record.downstream_remote_address or "-",
        "-",  # requested server name
        record.route_name or "-",
        f"attempts={len(record.attempts)}",
        "faults=" + (",".join(_all_faults(record)) or "-"),
        "source=" + (record.source or "-"),
        *_websocket_fields(record),
    ]
    return printable(" ".join(fields))


def _websocket_fields(record: Record) -> list[str]:
    """A WebSocket's line also says its messages each way (from the client / to it) and how it
    closed: ``messages=3/3 close=1000,client``."""
    ws = record.websocket
    if ws is None:
        return []
    code = "-" if ws.close_code is None else str(ws.close_code)
    return [
        f"messages={ws.messages_from_client}/{ws.messages_to_client}",
        f"close={code},{ws.closed_by or '-'}",
    ]


def format_json(record: Record) -> str:
    """Istio's JSON access-log keys, plus ``attempts``, ``faults`` and ``source_workload``."""
    p = printable if _needs_escaping(record) else _as_is  # one check for the usual case
    websocket = (
        {"websocket": dataclasses.asdict(record.websocket)} if record.websocket is not None else {}
    )
    return json.dumps(
        {
            "start_time": _iso(record.start),
            "method": p(record.method) or None,
            "path": _path(record) or None,
            "protocol": record.protocol,
            "response_code": record.status,
            "response_flags": format_flags(record.flags),
            "response_code_details": p(record.details) or None,
            "bytes_received": record.bytes_received,
            "bytes_sent": record.bytes_sent,
            "duration": int(record.duration * 1000),
            "upstream_service_time": _service_ms(record),
            "user_agent": p(record.user_agent) or None,
            "request_id": p(record.request_id),
            "authority": p(record.authority),
            "upstream_host": p(record.upstream_host) or None,
            "upstream_cluster": p(record.cluster) or None,
            "route_name": p(record.route_name) or None,
            "listener": p(record.listener),
            "upstream_local_address": record.upstream_local_address or None,
            "downstream_local_address": record.downstream_local_address or None,
            "downstream_remote_address": record.downstream_remote_address or None,
            "source_workload": p(record.source) or None,
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
            **websocket,
        },
        separators=(",", ":"),
    )
