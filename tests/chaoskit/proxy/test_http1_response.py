"""The upstream response parser: framing by RFC 9112 §6.3, strict where leniency would let an
upstream smuggle or hide a response, and the same result however the bytes are split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.proxy.http1_response import MAX_HEAD, MAX_HEADERS, ParseError, ResponseParser


def parse(raw: bytes, *, head_request: bool = False, eof: bool = False) -> ResponseParser:
    p = ResponseParser(head_request=head_request)
    p.feed(raw)
    if eof:
        p.feed_eof()
    return p


def test_a_body_framed_by_content_length() -> None:
    p = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
    assert p.done and p.keep_alive and p.body() == b"hello"
    assert p.head is not None
    assert (p.head.status, p.head.reason, p.head.length) == (200, "OK", 5)
    assert p.head.headers == (("Content-Length", "5"), ("X-A", "b"))


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nGrpc-Status: 0\r\n\r\n"
    p = parse(raw)
    assert p.done and p.keep_alive and p.body() == b"hello!"
    assert p.trailers == (("Grpc-Status", "0"),)


def test_a_body_delimited_by_the_close_ends_at_eof_and_is_not_reused() -> None:
    p = parse(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    assert not p.done
    p.feed(b"part two")
    p.feed_eof()
    assert p.done and not p.keep_alive and p.body() == b"part one, part two"


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_responses_that_never_have_a_body(raw: bytes) -> None:
    p = parse(raw)
    assert p.done and p.body() == b"" and p.keep_alive


def test_a_response_to_head_has_no_body_whatever_it_announces() -> None:
    p = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", head_request=True)
    assert p.done and p.body() == b"" and p.keep_alive


def test_interim_responses_are_skipped() -> None:
    p = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
              b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")  # fmt: skip
    assert p.head is not None and p.head.status == 201 and p.body() == b"ok"


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
        # both framings: transfer-encoding wins, and the connection is not trusted again
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            False,
        ),
        # bytes after the end of the response: a second, unasked-for response
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n", False),
    ],
)
def test_when_the_connection_may_carry_another_request(raw: bytes, keep_alive: bool) -> None:
    p = parse(raw)
    assert p.done and p.keep_alive is keep_alive


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    ],
)
def test_broken_framing_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse(raw)


def test_identical_repeated_content_lengths_are_one_length() -> None:
    p = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok")
    assert p.done and p.body() == b"ok"


def test_envoy_limits_on_the_head() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    with pytest.raises(ParseError, match="headers"):
        parse(b"HTTP/1.1 200 OK\r\n" + many + b"\r\n")
    p = ResponseParser()
    with pytest.raises(ParseError, match="head larger"):
        p.feed(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD)  # no end of head in sight


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nContent-Len",
        b"",
    ],
)
def test_a_close_before_the_end_is_an_incomplete_response(raw: bytes) -> None:
    with pytest.raises(ParseError, match="closed before"):
        parse(raw, eof=True)


RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.0 503 Service Unavailable\r\nServer: x\r\n\r\nuntil the close",
]


@given(st.sampled_from(RESPONSES), st.lists(st.integers(0, 200), max_size=12))
def test_the_result_does_not_depend_on_how_the_bytes_arrive(raw: bytes, cuts: list[int]) -> None:
    whole = parse(raw, eof=True)
    split = ResponseParser()
    points = sorted({min(c, len(raw)) for c in cuts})
    for a, b in zip([0, *points], [*points, len(raw)], strict=True):
        split.feed(raw[a:b])
    split.feed_eof()
    assert split.head == whole.head and split.body() == whole.body()
    assert split.trailers == whole.trailers and split.keep_alive == whole.keep_alive
