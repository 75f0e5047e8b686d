"""The HTTP/1 codec's limits, replies and request header timer, without mitmproxy's layers."""

from __future__ import annotations

import pytest
from mitmproxy.test import tflow

from chaoskit.proxy import codec_limits


def test_close_client_without_a_running_proxy_does_nothing():
    assert (
        codec_limits.close_client(tflow.tclient_conn(), codec_limits.REQUEST_HEADER_TIMEOUT)
        is False
    )


def test_head_timer():
    timer = codec_limits.HeadTimer(10.0)
    timer.head_started(100.0)
    assert timer.arm(100.0) == 10.0
    assert timer.arm(101.0) is None  # one outstanding
    timer.head_started(105.0)  # the same head: the deadline stays
    assert timer.deadline == 110.0
    assert not timer.fired(109.0)
    assert timer.arm(109.0) == pytest.approx(1.0)
    assert timer.fired(110.0)
    timer.head_complete()
    assert not timer.fired(111.0)
    assert timer.arm(111.0) is None  # nothing in progress


def test_invalid_head_lines():
    assert not codec_limits.invalid_head_lines([b"GET / HTTP/1.1", b"A: b\tc", b"B: \xff"])
    assert codec_limits.invalid_head_lines([b"GET / HTTP/1.1", b"A: b\r"])
    assert codec_limits.invalid_head_lines([bytearray(b"A: \x0b")])


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10.0), ("250ms", 0.25), ("0", 0.0), ("junk", 0.0)]
)
def test_timeout_seconds(text, seconds):
    assert codec_limits.timeout_seconds(text) == seconds


def test_the_stat_sink_counts_and_never_raises():
    seen: list[str] = []
    previous = codec_limits.set_stat_sink(seen.append)
    try:
        codec_limits.count("http.downstream_rq_header_timeout")

        def broken(stat: str) -> None:
            raise RuntimeError(stat)

        codec_limits.set_stat_sink(broken)
        codec_limits.count("x")  # logged, not raised
    finally:
        codec_limits.set_stat_sink(previous)
    assert seen == ["http.downstream_rq_header_timeout"]
