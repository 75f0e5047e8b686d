"""UpstreamFault body actions on streams, through the real proxy (issue #14 item 2): the body
keeps streaming while it is paced, paused, cut or reset, and the record says what happened."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.builders import fault
from tests.integration.test_resilience import vs


def timed_events(r: requests.Response) -> list[tuple[float, str]]:
    t0 = time.monotonic()
    return [(time.monotonic() - t0, e) for e in r.iter_lines(decode_unicode=True) if e]


def events_of(r: requests.Response) -> Iterator[str]:
    return (e for e in r.iter_lines(decode_unicode=True) if e)


def test_a_pause_after_an_event_holds_the_stream_then_it_goes_on(mesh, client):
    mesh.apply(fault("host: ratings\npauseBody: {afterEvents: 1, for: 600ms}\n"))
    t0 = time.monotonic()
    with client.get("http://ratings:9080/sse/3/50", stream=True, timeout=10) as r:
        events = timed_events(r)
        first_after = time.monotonic() - t0 - events[-1][0] + events[0][0]
    assert [e for _, e in events] == ["data: 0", "data: 1", "data: 2"]
    assert first_after < 0.4  # the first event was not held back: the body streams
    assert events[1][0] - events[0][0] >= 0.55
    record = mesh.records[-1]
    assert (record.status, record.flags) == (200, ())
    assert record.attempts[0].faults == ("UpstreamFault/default/f:pauseBody",)
    assert "UpstreamFault paused the body for 0.6s after 1 SSE event (9 bytes sent)" in (
        record.notes
    )


def test_a_cut_after_n_events_ends_the_stream_cleanly(mesh, client):
    mesh.apply(fault("host: ratings\ntruncateBody: {afterEvents: 2}\n"))
    with client.get("http://ratings:9080/sse/5/20", stream=True, timeout=10) as r:
        events = [e for e in r.iter_lines(decode_unicode=True) if e]  # no error: a clean end
    assert events == ["data: 0", "data: 1"]
    record = mesh.records[-1]
    assert (record.status, record.flags, record.bytes_sent) == (200, (), 18)
    assert "UpstreamFault ended the body cleanly after 2 SSE events (18 bytes sent)" in (
        record.notes
    )


def test_a_reset_after_n_events_cuts_the_stream_and_is_not_retried(mesh, client):
    mesh.apply(
        fault("host: ratings\nreset: {afterEvents: 2}\n"),
        vs("hosts: [ratings]\nhttp:\n- route: [{destination: {host: ratings}}]\n"
           "  retries: {attempts: 3, retryOn: 'reset,5xx'}\n"),
    )  # fmt: skip
    got: list[str] = []
    with (
        client.get("http://ratings:9080/sse/5/20", stream=True, timeout=10) as r,
        pytest.raises(requests.exceptions.ChunkedEncodingError),
    ):
        for event in events_of(r):
            got.append(event)
    assert got == ["data: 0", "data: 1"]
    record = mesh.records[-1]
    assert (record.status, record.flags) == (200, ("UC",))
    assert record.details == "upstream_reset_after_response_started{connection_termination}"
    assert [a.outcome for a in record.attempts] == ["reset-after-headers"]
    assert any("UpstreamFault reset after 2 events" in n for n in record.notes), record.notes


def test_a_slow_body_trickles_instead_of_arriving_whole_at_the_end(mesh, client):
    mesh.apply(fault("host: ratings\nslowBody: {bytesPerSecond: 400}\n"))
    t0 = time.monotonic()
    with client.get("http://ratings:9080/json", stream=True, timeout=10) as r:
        size = int(r.headers["content-length"])
        first = r.raw.read(1)
        first_after = time.monotonic() - t0
        rest = r.raw.read()
    total = time.monotonic() - t0
    assert len(first + rest) == size and (first + rest).startswith(b'{"upstream"')
    assert first_after < 0.5  # 20 bytes every 50 ms, not the whole body after size/400 s
    assert total >= size / 400 * 0.9
    assert mesh.records[-1].flags == ()


def test_a_stall_without_end_is_cut_by_the_route_timeout(mesh, client):
    mesh.apply(
        fault("host: ratings\npauseBody: {afterEvents: 1}\n"),
        vs("hosts: [ratings]\nhttp:\n- route: [{destination: {host: ratings}}]\n"
           "  timeout: 500ms\n"),
    )  # fmt: skip
    got: list[str] = []
    t0 = time.monotonic()
    with (
        client.get("http://ratings:9080/sse/3/10", stream=True, timeout=10) as r,
        pytest.raises(requests.exceptions.ChunkedEncodingError),
    ):
        for event in events_of(r):
            got.append(event)
    assert got == ["data: 0"]
    assert 0.45 <= time.monotonic() - t0 < 5
    record = mesh.records[-1]
    assert (record.status, record.flags) == (200, ("UT",))
    assert "UpstreamFault paused the body with no end after 1 SSE event (9 bytes sent)" in (
        record.notes
    )


def test_a_corrupted_stream_keeps_its_framing(mesh, client):
    mesh.apply(fault("host: ratings\ncorruptBody: {bytes: 2}\n"))
    with client.get("http://ratings:9080/stream/3/10", stream=True, timeout=10) as r:
        body = r.raw.read()
    clean = b"piece 0\npiece 1\npiece 2\n"
    assert len(body) == len(clean)
    assert sum(a != b for a, b in zip(body, clean, strict=True)) == 2
    # without a length, the flipped bytes are in the first piece that came
    assert body[8:] == clean[8:]
