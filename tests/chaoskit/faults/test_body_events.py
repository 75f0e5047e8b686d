"""Where events end in a streamed body (chaoskit/faults/body_events.py): each format's own rule,
and the same answer however the body is split into pieces."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.faults.body_events import (
    EventCounter,
    GrpcMessages,
    Lines,
    SseEvents,
    counter_for,
    kind_of,
)


def ends(counter: EventCounter, *pieces: bytes, limit: int = 1000) -> list[int]:
    """Event ends as offsets in the whole body."""
    out, base = [], 0
    for piece in pieces:
        out += [base + e for e in counter.scan(piece, limit)]
        base += len(piece)
    return out


def grpc(message: bytes, flag: int = 0) -> bytes:
    return bytes([flag]) + len(message).to_bytes(4, "big") + message


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/event-stream", "sse"),
        ("Text/Event-Stream; charset=utf-8", "sse"),
        ("application/grpc", "grpc"),
        ("application/grpc+proto", "grpc"),
        ("application/grpc-web+proto", "grpc"),
        ("application/grpc-web-text", "lines"),
        ("application/x-ndjson", "lines"),
        ("", "lines"),
    ],
)
def test_the_content_type_says_what_an_event_is(content_type: str, kind: str) -> None:
    assert kind_of(content_type) == kind
    assert type(counter_for(content_type)).__name__ == {
        "sse": "SseEvents", "grpc": "GrpcMessages", "lines": "Lines",
    }[kind]  # fmt: skip


SSE = b"data: a\n\n: keep-alive\n\nevent: x\ndata\n\nid: 7\n\ndata: b\r\ndata: c\r\n\r\n"


def test_an_sse_event_ends_at_a_blank_line_after_data() -> None:
    # the comment-only block and the id-only block dispatch nothing (WHATWG §9.2.6)
    assert ends(SseEvents(), SSE) == [9, 38, len(SSE)]


def test_sse_line_ends_may_be_cr_alone_and_a_crlf_may_be_split() -> None:
    assert ends(SseEvents(), b"data: a\r\rdata: b\r", b"\n\r\n") == [9, 20]
    # an event whose last CR ends a piece ends after the LF that follows, wherever it lands
    assert ends(SseEvents(), b"data: a\r\n\r", b"\ndata: b\n\r", b"data: c\n\n") == [
        11, 20, 29,
    ]  # fmt: skip


def test_sse_field_names_are_exact() -> None:
    assert ends(SseEvents(), b"dataX: no\n\ndata2\n\nda", b"ta:yes\n\n") == [28]


def test_grpc_messages_end_after_their_announced_length() -> None:
    body = grpc(b"hello") + grpc(b"") + grpc(b"x" * 300)
    assert ends(GrpcMessages(), body) == [10, 15, len(body)]


def test_a_grpc_web_trailer_frame_is_not_a_message() -> None:
    body = grpc(b"m") + grpc(b"grpc-status: 0\r\n", flag=0x80)
    assert ends(GrpcMessages(), body) == [6]


def test_lines_skip_blank_ones() -> None:
    assert ends(Lines(), b'{"a": 1}\n\n\r\n{"b"', b": 2}\r\n") == [9, 22]


def test_scan_stops_at_its_limit() -> None:
    assert SseEvents().scan(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", 2) == [9, 18]
    assert GrpcMessages().scan(grpc(b"1") + grpc(b"2"), 1) == [6]
    assert Lines().scan(b"1\n2\n3\n", 1) == [2]


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    bounds = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


SAMPLES = {
    "sse": SSE + b"data: d\r\rdata: e\n\n",
    "grpc": grpc(b"one") + grpc(b"") + grpc(b"three" * 40) + grpc(b"t", flag=0x80),
    "lines": b'{"a": 1}\n\n{"b": 2}\r\n\r\n{"c": 3}\n',
}

TYPES = {"sse": "text/event-stream", "grpc": "application/grpc", "lines": "application/x-ndjson"}


@given(kind=st.sampled_from(sorted(SAMPLES)), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_events_do_not_depend_on_how_the_body_is_split(kind: str, cuts: list[int]) -> None:
    body = SAMPLES[kind]
    whole = ends(
        counter_for({"sse": "text/event-stream", "grpc": "application/grpc"}.get(kind, "")), body
    )
    pieces = split(body, cuts)
    counter = counter_for({"sse": "text/event-stream", "grpc": "application/grpc"}.get(kind, ""))
    assert ends(counter, *pieces) == whole
