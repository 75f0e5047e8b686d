"""Building the mitmproxy response: the fast factory must build what mitmproxy builds."""

from __future__ import annotations

import pytest
from mitmproxy import http

from chaoskit.proxy import responses


@pytest.mark.parametrize(
    ("status", "reason", "headers", "body"),
    [
        (200, b"OK", [(b"content-length", b"2")], b"hi"),
        (503, b"Service Unavailable", [(b"x-envoy-overloaded", b"true"), (b"a", b"1")], b""),
        (599, b"", [], b"\x00\xff" * 100),
    ],
)
def test_the_unchecked_response_is_what_mitmproxy_builds(
    status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    fast = responses._unchecked_response(status, reason, http.Headers(headers), body, 12.5)
    slow = http.Response(b"HTTP/1.1", status, reason, http.Headers(headers), body, None, 12.5, 12.5)
    assert fast.get_state() == slow.get_state()
    assert (fast.status_code, fast.reason, fast.raw_content, fast.headers.fields) == (
        slow.status_code, slow.reason, slow.raw_content, slow.headers.fields,
    )  # fmt: skip


def test_the_pinned_mitmproxy_gets_the_unchecked_factory() -> None:
    # If this fails after a mitmproxy upgrade, the core still works (checked constructor),
    # but ~3 % slower: look at what changed in http.Response.
    assert responses._new_response is responses._unchecked_response
