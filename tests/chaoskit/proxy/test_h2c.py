"""Telling HTTP/2 with prior knowledge from HTTP/1.1 by a client's first bytes."""

from __future__ import annotations

import pytest

from chaoskit.proxy.h2c import PREFACE, is_prior_knowledge


@pytest.mark.parametrize("data", [PREFACE[:16], PREFACE, PREFACE + b"\x00\x00\x12\x04\x00"])
def test_the_preface_or_its_first_line_is_http2(data: bytes) -> None:
    assert is_prior_knowledge(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PRI * HT",  # too little to tell from an HTTP/1.1 request
        b"PRI * HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n",
        b"POST /x HTTP/2.0\r\n",
        PREFACE[:16] + b"XX",
    ],
)
def test_anything_else_is_not(data: bytes) -> None:
    assert not is_prior_knowledge(data)
