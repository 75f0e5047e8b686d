"""The close frames an UpstreamFault sends, and a cut with no live connection to act on."""

from __future__ import annotations

from mitmproxy.test import tflow

from chaoskit.proxy.websocket_cut import close_frame, cut


def test_close_frames_to_the_client_plain_and_to_the_upstream_masked() -> None:
    assert close_frame(1011, masked=False) == b"\x88\x02\x03\xf3"  # FIN+close, 2 bytes: 1011
    masked = close_frame(1011, masked=True)
    assert masked[:2] == b"\x88\x82"  # the mask bit set (RFC 6455 §5.3)
    key, payload = masked[2:6], masked[6:]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(payload)) == b"\x03\xf3"


def test_a_flow_without_a_live_connection_is_left_alone() -> None:
    assert cut(tflow.twebsocketflow(), 1000) is False
