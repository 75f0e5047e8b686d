"""HTTP/2 error codes as failure details name them (RFC 9113 §7)."""

from __future__ import annotations

from chaoskit.proxy.http2_errors import error_name


def test_error_codes_are_named_with_their_number() -> None:
    assert error_name(0x8) == "CANCEL (0x8)"
    assert error_name(0x7) == "REFUSED_STREAM (0x7)"
    assert error_name(0xFF) == "UNKNOWN (0xff)"  # an extension's code
    assert error_name(None) == "no error code"
