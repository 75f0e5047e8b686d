"""HTTP/2 header blocks without a connection: what a request carries, and Envoy's limits on
what comes back (the socket tests in test_http2_connection.py show them applied)."""

from __future__ import annotations

import pytest

from chaoskit.proxy.http1_response import MAX_HEAD, MAX_HEADERS
from chaoskit.proxy.http2_headers import (
    decode,
    header_list_size,
    over_limits,
    request_header_block,
    trailer_block,
)


def test_pseudo_headers_come_first_and_names_are_lower_case() -> None:
    block = request_header_block(
        "POST", "https", "svc:8443", "/pkg.Svc/Call?x=1#frag",
        [("Content-Type", "application/grpc"), ("X-Id", " 7 ")],
    )  # fmt: skip
    assert block == [
        (b":method", b"POST"), (b":scheme", b"https"), (b":authority", b"svc:8443"),
        (b":path", b"/pkg.Svc/Call?x=1"),
        (b"content-type", b"application/grpc"), (b"x-id", b"7"),
    ]  # fmt: skip


def test_connection_specific_headers_are_left_out_and_te_only_as_trailers() -> None:
    headers = [("Host", "svc"), ("Connection", "close"), ("Keep-Alive", "5"),
               ("Proxy-Connection", "x"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
               ("TE", "gzip"), ("te", "Trailers"), ("x-kept", "1")]  # fmt: skip
    block = request_header_block("GET", "http", "svc", "/", headers)
    assert block[4:] == [(b"te", b"Trailers"), (b"x-kept", b"1")]


@pytest.mark.parametrize(
    ("method", "path", "authority", "headers", "message"),
    [
        ("G(ET", "/", "svc", [], "request method 'G(ET' is not a token"),
        ("GET", "*", "svc", [], "request path '*' is not a path"),
        ("GET", "/", "", [], "authority '' is not a host"),
        ("GET", "/", "svc", [("x:y", "v")], "header name 'x:y' is not a token"),
        ("GET", "/", "svc", [("x", "a\nb")], "NUL, CR or LF in the value of header 'x'"),
    ],
)
def test_what_http2_forbids_is_refused_with_a_reason(
    method: str, path: str, authority: str, headers: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        request_header_block(method, "http", authority, path, headers)


def test_sizes_and_limits_count_as_rfc_9113_and_envoy_do() -> None:
    assert header_list_size([(b"ab", b"cde")]) == 2 + 3 + 32
    at_count = [(b"x", b"")] * MAX_HEADERS
    assert not over_limits(at_count) and over_limits([*at_count, (b"x", b"")])
    value = b"v" * (MAX_HEAD - 32 - 1)
    assert not over_limits([(b"x", value)]) and over_limits([(b"x", value + b"v")])


def test_values_decode_as_latin_1() -> None:
    assert decode([(b"x-name", b"caf\xe9")]) == (("x-name", "café"),)


def test_request_trailers_keep_their_fields_in_lower_case_without_connection_ones() -> None:
    trailers = [("X-Checksum", " abc "), (":path", "/x"), ("Connection", "close"),
                ("TE", "trailers"), ("Host", "other"), ("grpc-status", "0")]  # fmt: skip
    assert trailer_block(trailers) == [(b"x-checksum", b"abc"), (b"grpc-status", b"0")]


@pytest.mark.parametrize(
    ("trailers", "message"),
    [
        ([("x y", "1")], "trailer name 'x y' is not a token"),
        ([("x-a", "1\r\nx-b: 2")], "NUL, CR or LF in the value of trailer 'x-a'"),
    ],
)
def test_request_trailers_that_cannot_be_sent_are_refused(trailers, message) -> None:
    with pytest.raises(ValueError, match=message):
        trailer_block(trailers)
