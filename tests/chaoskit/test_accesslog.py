import dataclasses
import json
import socket

import pytest

from chaoskit.accesslog import format_json, format_text, printable
from chaoskit.records import AttemptRecord, Record, WebSocketSummary
from chaoskit.testing import Upstream
from tests.builders import service_entry
from tests.soak.soak import ProxyProcess

RECORD = Record(
    seq=1,
    request_id="abc",
    start=0.0,
    duration=0.0123,
    listener="mesh",
    source="productpage",
    method="GET",
    scheme="http",
    authority="reviews:9080",
    path="/r?x=1",
    status=503,
    flags=("UF", "URX"),
    details="upstream_reset_before_response_started{connection failure}",
    route_name="default",
    host="reviews.default.svc.cluster.local",
    cluster="outbound|9080||reviews.default.svc.cluster.local",
    upstream_host="127.0.0.1:9081",
    attempts=(AttemptRecord(1, "127.0.0.1:9081", "connect-failure", None, 0.001),),
    user_agent="curl/8",
)


def test_text_line_follows_istios_field_order():
    line = format_text(RECORD)
    assert line.startswith(
        '[1970-01-01T00:00:00.000Z] "GET /r?x=1 HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection failure} - "-" 0 0 12 - "-" "curl/8" "abc" "reviews:9080" "127.0.0.1:9081" outbound|9080||reviews.default.svc.cluster.local'
    )
    assert line.endswith("default attempts=1 faults=- source=productpage")


def test_a_websocket_line_says_its_messages_and_how_it_closed():
    summary = WebSocketSummary(3, 30, 2, 20, "fault", 1006)
    ws = dataclasses.replace(RECORD, status=101, flags=("UC",), websocket=summary)
    assert format_text(ws).endswith(" source=productpage messages=3/2 close=1006,fault")
    assert json.loads(format_json(ws))["websocket"] == {
        "messages_from_client": 3, "bytes_from_client": 30, "messages_to_client": 2,
        "bytes_to_client": 20, "closed_by": "fault", "close_code": 1006,
    }  # fmt: skip
    assert format_text(RECORD).endswith(" source=productpage")  # only on WebSocket lines
    assert "websocket" not in json.loads(format_json(RECORD))


def test_json_line():
    data = json.loads(format_json(RECORD))
    assert data["response_flags"] == "UF,URX" and data["response_code"] == 503
    assert data["attempts"] == [
        {
            "endpoint": "127.0.0.1:9081",
            "outcome": "connect-failure",
            "status": None,
            "duration_ms": 1.0,
            "faults": [],
        }
    ]
    assert data["source_workload"] == "productpage"


TCP_RECORD = dataclasses.replace(
    RECORD, request_id="", method="", scheme="tcp", authority="redis:6379", path="", status=0,
    flags=(), details="", route_name="", protocol="TCP", duration=1.5,
    host="redis.default.svc.cluster.local", cluster="outbound|6379||redis.default.svc.cluster.local",
    upstream_host="127.0.0.1:7001", bytes_received=14, bytes_sent=7, user_agent="",
    attempts=(AttemptRecord(1, "127.0.0.1:7001", "connected", None, 1.4, ("UpstreamFault/default/slow:latency",)),),
    upstream_local_address="127.0.0.1:50002", downstream_local_address="127.0.0.1:16379",
    downstream_remote_address="127.0.0.1:50001",
)  # fmt: skip


def test_a_tcp_connection_reads_like_a_sidecar_tcp_proxy_line():
    """Istio's default format for a TCP proxy: no request, so "- - -" and code 0; the socket
    addresses Envoy knows for a connection."""
    assert format_text(TCP_RECORD) == (
        '[1970-01-01T00:00:00.000Z] "- - -" 0 - - - "-" 14 7 1500 - "-" "-" "-" "-" '
        '"127.0.0.1:7001" outbound|6379||redis.default.svc.cluster.local 127.0.0.1:50002 '
        "127.0.0.1:16379 127.0.0.1:50001 - - attempts=1 "
        "faults=UpstreamFault/default/slow:latency source=productpage"
    )
    data = json.loads(format_json(TCP_RECORD))
    assert (data["method"], data["path"], data["protocol"], data["response_code"]) == (
        None, None, "TCP", 0,
    )  # fmt: skip
    assert data["downstream_remote_address"] == "127.0.0.1:50001"


# -- one line per request, whatever bytes it carried --------------------------------------------

#: What mitmproxy hands chaoskit for a header or path byte that is not UTF-8 (surrogateescape).
NOT_UTF8 = b"curl/\xff\xfe \xc3\xa9".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("fmt", [format_text, format_json])
def test_non_utf8_bytes_and_control_characters_are_escaped(fmt):
    record = dataclasses.replace(
        RECORD, user_agent=NOT_UTF8, path="/r?q=\udc80", request_id="a\nb\u2028c"
    )
    line = fmt(record)
    line.encode("utf-8")  # writable to any UTF-8 stream: this raised, and the line was lost
    assert len(line.splitlines()) == 1
    text = json.loads(line)["user_agent"] if fmt is format_json else line
    assert "curl/\\xff\\xfe é" in text  # valid UTF-8 stays as it is
    assert "/r?q=\\x80" in (json.loads(line)["path"] if fmt is format_json else line)
    assert "a\\x0ab\\u2028c" in (json.loads(line)["request_id"] if fmt is format_json else line)


def test_printable_text_is_left_as_it_is():
    for text in ("plain", "é ü 日本", "a\\xffb", ""):
        assert printable(text) == text


@pytest.mark.parametrize("fmt", [format_text, format_json])
def test_credential_query_parameters_are_redacted_from_the_logged_path(fmt):
    record = dataclasses.replace(RECORD, path="/cb?code=1&access_token=SECRET-T&api_key=k&page=2")
    line = fmt(record)
    path = json.loads(line)["path"] if fmt is format_json else line
    assert "/cb?code=1&access_token=<redacted>&api_key=<redacted>&page=2" in path
    assert "SECRET" not in line


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_non_utf8_user_agent_through_the_cli_still_gets_its_line(fmt, tmp_path):
    log = tmp_path / "access.log"
    with Upstream("web") as up:
        (tmp_path / "mesh.yaml").write_text(service_entry("web", up.port))
        extra = ("--access-log", str(log), "--access-log-format", fmt)
        with ProxyProcess([tmp_path / "mesh.yaml"], tmp_path / "state", extra=extra) as proxy:
            proxy.wait_ready()
            for ua in (b"curl/\xff\xfe \xc3\xa9", b"curl/8"):
                raw = (b"GET http://web/ua HTTP/1.1\r\nHost: web\r\nUser-Agent: " + ua
                       + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
                    c.sendall(raw)
                    reply = b""
                    while chunk := c.recv(65536):
                        reply += chunk
                assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
            proxy.stop()
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2, lines
    if fmt == "json":
        assert [json.loads(line)["user_agent"] for line in lines] == [
            "curl/\\xff\\xfe é",
            "curl/8",
        ]
    else:
        assert '"curl/\\xff\\xfe é"' in lines[0] and '"curl/8"' in lines[1]


@pytest.mark.parametrize("fmt", [format_text, format_json])
def test_the_line_names_the_protocol_the_client_spoke(fmt):
    line = fmt(dataclasses.replace(RECORD, protocol="HTTP/2"))
    assert ('"GET /r?x=1 HTTP/2"' in line) if fmt is format_text else (
        json.loads(line)["protocol"] == "HTTP/2"
    )  # fmt: skip


def test_an_http_1_0_request_is_recorded_as_one(tmp_path):
    from chaoskit.proxy.api import Proxy

    with Upstream("web") as up, Proxy(service_entry("web", up.port), state_dir=tmp_path) as proxy:
        for version in (b"HTTP/1.0", b"HTTP/1.1"):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
                c.sendall(
                    b"GET http://web/v " + version + b"\r\nHost: web\r\nConnection: close\r\n\r\n"
                )
                while c.recv(65536):
                    pass
        assert [r.protocol for r in proxy.records] == ["HTTP/1.0", "HTTP/1.1"]
        assert '"GET /v HTTP/1.0"' in format_text(proxy.records[0])
