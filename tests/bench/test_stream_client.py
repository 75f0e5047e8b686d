"""The streaming client reads both framings a proxy may choose, however the bytes are split."""

from __future__ import annotations

from bench.stream_client import Framing

_CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunked(*pieces: bytes) -> bytes:
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
    return body + b"0\r\n\r\n"


def test_a_chunked_body_is_decoded_whatever_the_read_boundaries() -> None:
    pieces = (b"data: event 0\n\n", b"x" * 300, b"\r\n\r\n", b"data: end\n\n")
    wire = _chunked(*pieces)
    for cut in range(1, len(wire)):
        framing = Framing(_CHUNKED_HEAD)
        payload = framing.feed(wire[:cut]) + framing.feed(wire[cut:])
        assert payload == b"".join(pieces), cut
        assert framing.done and framing.payload == len(payload), cut
    framing = Framing(_CHUNKED_HEAD)
    byte_by_byte = b"".join(framing.feed(wire[i : i + 1]) for i in range(len(wire)))
    assert byte_by_byte == b"".join(pieces) and framing.done


def test_a_chunked_body_is_not_done_before_its_last_chunk() -> None:
    framing = Framing(_CHUNKED_HEAD)
    framing.feed(_chunked(b"abc")[:-5], keep=False)  # all but "0\r\n\r\n"
    assert not framing.done and framing.payload == 3


def test_a_body_of_known_length_is_counted_without_copies() -> None:
    framing = Framing(b"HTTP/1.1 206 Partial\r\nContent-Length: 10\r\n\r\n")
    assert (framing.status, framing.chunked, framing.length) == (206, False, 10)
    assert framing.feed(memoryview(b"12345")) == b"" and not framing.done
    framing.feed(b"67890")
    assert framing.done and framing.payload == 10
    assert Framing(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").done
