"""The lean runtime."""

from __future__ import annotations


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
