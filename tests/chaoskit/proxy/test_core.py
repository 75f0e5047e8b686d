"""Pieces of the core addon that need no running proxy."""

from __future__ import annotations

import pytest
from mitmproxy import http

from chaoskit.proxy import core


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
    fast = core._unchecked_response(status, reason, http.Headers(headers), body, 12.5)
    slow = http.Response(b"HTTP/1.1", status, reason, http.Headers(headers), body, None, 12.5, 12.5)
    assert fast.get_state() == slow.get_state()
    assert (fast.status_code, fast.reason, fast.raw_content, fast.headers.fields) == (
        slow.status_code, slow.reason, slow.raw_content, slow.headers.fields,
    )  # fmt: skip


def test_the_pinned_mitmproxy_gets_the_unchecked_factory() -> None:
    # If this fails after a mitmproxy upgrade, the core still works (checked constructor),
    # but ~3 % slower: look at what changed in http.Response.
    assert core._new_response is core._unchecked_response


def test_skipping_mitmproxy_debug_typechecks_is_process_wide_and_only_when_asked() -> None:
    # In a child process: the switch is process-wide by design (``chaoskit proxy`` only).
    import subprocess
    import sys

    code = """
from mitmproxy import http
from chaoskit.proxy.runtime import skip_debug_typechecks
def bad():
    return http.Response(b"HTTP/1.1", "200", b"OK", http.Headers(), b"", None, 1.0, 1.0)
try:
    bad()
except TypeError:
    print("checked")
assert skip_debug_typechecks()
bad()
print("unchecked")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["checked", "unchecked"]
