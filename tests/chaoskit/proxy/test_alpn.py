"""The ALPN choice on intercepted TLS: ``h2`` when the client offers it and nothing fixes the
protocol already; every other case is mitmproxy's (its callback is called)."""

from __future__ import annotations

from typing import Any

import pytest

from chaoskit.proxy.alpn import chooses_h2, prefer_h2

FREE = {"client_alpn": None, "server_alpn": None, "http2": True}


def test_h2_is_chosen_whatever_its_place_in_the_offer():
    assert chooses_h2(FREE, [b"http/1.1", b"h2"])
    assert chooses_h2(FREE, [b"h2", b"http/1.1"])


@pytest.mark.parametrize(
    ("app_data", "offered"),
    [
        (FREE, [b"http/1.1"]),  # not offered
        ({**FREE, "client_alpn": b"http/1.1"}, [b"http/1.1", b"h2"]),  # secure web proxy
        ({**FREE, "server_alpn": b"http/1.1"}, [b"http/1.1", b"h2"]),  # mirrors the upstream
        ({**FREE, "server_alpn": b""}, [b"http/1.1", b"h2"]),  # the upstream refused ALPN
        ({**FREE, "http2": False}, [b"http/1.1", b"h2"]),  # mitmproxy's http2 option off
        ({"http2": True}, [b"h2"]),  # AppData of another shape: mitmproxy decides
        (None, [b"h2"]),
    ],
)
def test_anything_that_fixes_the_protocol_is_left_to_mitmproxy(app_data: Any, offered):
    assert not chooses_h2(app_data, offered)


class Conn:
    def __init__(self, app_data: object) -> None:
        self.app_data = app_data

    def get_app_data(self) -> object:
        return self.app_data


def test_the_wrapper_answers_h2_or_asks_mitmproxys_callback():
    asked = []

    def original(conn: Any, options: list[bytes]) -> bytes:
        asked.append(options)
        return options[0]

    select = prefer_h2(original)
    assert select(Conn(FREE), [b"http/1.1", b"h2"]) == b"h2"
    assert asked == []
    pinned = {**FREE, "client_alpn": b"http/1.1"}
    assert select(Conn(pinned), [b"http/1.1", b"h2"]) == b"http/1.1"
    assert asked == [[b"http/1.1", b"h2"]]
