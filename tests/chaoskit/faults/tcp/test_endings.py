"""The endings' YAML, and how TCP actions combine in one UpstreamFault."""

from __future__ import annotations

import pytest

from chaoskit.faults.tcp.endings import TcpLimitData, TcpResetPeer, TcpTimeout
from tests.chaoskit.faults.helpers import fault

from .helpers import errors


def test_ending_forms() -> None:
    assert fault("host: p\nlimitData: {bytes: 5}").limit_data == TcpLimitData(5, "downstream")
    assert fault("host: p\nresetPeer: {}").reset_peer == TcpResetPeer()
    assert fault("host: p\nresetPeer: {after: 2s}").reset_peer == TcpResetPeer(after=2.0)
    assert fault("host: p\nresetPeer: {afterBytes: 9, stream: upstream}").reset_peer == (
        TcpResetPeer(after_bytes=9, stream="upstream")
    )
    assert fault("host: p\ntimeout: {}").timeout == TcpTimeout()
    assert fault("host: p\ntimeout: {after: 1s}").timeout == TcpTimeout(1.0)


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ("limitData: {}", "spec.limitData", '"bytes" is required'),
        ("resetPeer: {after: 1s, afterBytes: 3}", "spec.resetPeer",
         "only one of after, afterBytes may be set"),
        ("resetPeer: {stream: upstream}", "spec.resetPeer.stream",
         "stream only applies to afterBytes"),
        ("timeout: {after: 0s}", "spec.timeout.after", ""),
        # One fault, one kind of traffic.
        ("latency: {fixedDelay: 1ms}\nabort: {httpStatus: 503}", "spec.abort",
         "abort is an HTTP action and latency a TCP one: a fault acts on HTTP requests or on "
         "TCP connections, not both (write two UpstreamFaults)"),
        ("resetPeer: {}\nmatch: [{uri: {prefix: /}}]", "spec.match",
         "match selects HTTP requests; resetPeer acts on whole TCP connections"),
        # A connection ends once; shaping combines with anything.
        ("latency: {fixedDelay: 1ms}\nlimitData: {bytes: 1}\ntimeout: {}", "spec.timeout",
         "timeout cannot be combined with limitData: a connection ends only once "
         "(use sequence to alternate them)"),
        ("sequence: [resetPeer, slowBody]\nresetPeer: {}", "spec.sequence[1]",
         '"slowBody" is not configured in this fault'),
        ("hang: false", "spec",
         "an UpstreamFault needs at least one action: delay, abort, reset, hang, slowBody, "
         "pauseBody, truncateBody, corruptBody, webSocket (HTTP) or latency, bandwidth, slicer, limitData, "
         "resetPeer, timeout (TCP)"),
    ],
)  # fmt: skip
def test_tcp_fault_errors(spec: str, path: str, message: str) -> None:
    found = errors("host: p\n" + spec)
    assert any(p == path and message in m for p, m in found), found


def test_shaping_and_one_ending_make_one_fault() -> None:
    f = fault(
        "host: p\nlatency: {fixedDelay: 1ms}\nbandwidth: {bytesPerSecond: 9}\n"
        "slicer: {averageSize: 2}\nresetPeer: {}"
    )
    assert f.actions == ("latency", "bandwidth", "slicer", "resetPeer")
    assert f.is_tcp
