"""Telling an HTTP/2 extended CONNECT by its header block, and the wrapper that records it
before mitmproxy refuses it (the whole story through a real proxy:
tests/integration/test_http2_clients.py)."""

from __future__ import annotations

from typing import Any

import h2.events
import pytest

from chaoskit.proxy import http2_connect
from chaoskit.proxy.http2_connect import extended_connect

CONNECT = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
           (b":authority", b"a.test"), (b":path", b"/chat")]  # fmt: skip


def test_the_protocol_pseudo_header_makes_an_extended_connect():
    assert extended_connect(CONNECT) == "websocket"


@pytest.mark.parametrize(
    "headers",
    [
        [(b":method", b"CONNECT"), (b":authority", b"a.test:443")],  # a plain CONNECT
        [(b":method", b"GET"), (b":path", b"/"), (b"x-protocol", b"websocket")],
        [(b":method", b"GET"), (b"x", b"1"), (b":protocol", b"late")],  # not a pseudo-header
    ],
)
def test_anything_else_is_not(headers):
    assert extended_connect(headers) is None


def event(headers: list[tuple[bytes, bytes]]) -> h2.events.RequestReceived:
    try:
        e = h2.events.RequestReceived(stream_id=1)  # h2 >= 4.2 (dataclass events)
    except TypeError:
        e = h2.events.RequestReceived()
        e.stream_id = 1
    e.headers = headers
    return e


def test_the_wrapper_records_an_extended_connect_and_leaves_every_event_to_mitmproxy(
    monkeypatch: pytest.MonkeyPatch,
):
    recorded, handled = [], []
    monkeypatch.setattr(
        http2_connect, "record", lambda context, headers, protocol: recorded.append(protocol)
    )

    def original(self: Any, e: Any) -> Any:
        handled.append(e)
        yield "mitmproxy's commands"
        return True

    layer = type("Layer", (), {"context": None})()
    wrapped = http2_connect.wrappers()["handle_h2_event"](original)
    get = event([(b":method", b"GET"), (b":path", b"/")])
    for e in (event(CONNECT), get, object()):
        assert list(wrapped(layer, e)) == ["mitmproxy's commands"]
    assert recorded == ["websocket"] and len(handled) == 3


def test_a_failure_to_record_does_not_change_what_mitmproxy_does(monkeypatch):
    def broken(*args: Any) -> None:
        raise RuntimeError("no record")

    monkeypatch.setattr(http2_connect, "record", broken)

    def original(self: Any, e: Any) -> Any:
        yield "refused"

    wrapped = http2_connect.wrappers()["handle_h2_event"](original)
    assert list(wrapped(type("Layer", (), {"context": None})(), event(CONNECT))) == ["refused"]
