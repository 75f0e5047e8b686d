"""pip never installs a pyOpenSSL that makes mitmproxy's TLS handshake warn.

Under ``filterwarnings = error`` (common in serious projects, and in this repository) a
DeprecationWarning raised inside mitmproxy's TLS handshake fails the HTTPS interception: the
client sees a handshake error. Seen by running an intercepted HTTPS request with every warning
recorded, per combination pip can install:

- Python 3.11 (mitmproxy 11.0.2): pyOpenSSL 24.3.0 warns "Passing pyOpenSSL X509/PKey objects
  is deprecated" (mitmproxy/addons/tlsconfig.py); 24.2.1 does not.
- Python 3.12 (mitmproxy 12.1.2 … 12.3.1): pyOpenSSL 25.1.0 warns "Attempting to mutate a
  Context after a Connection was created" (mitmproxy/net/tls.py); 24.3.0, 25.0.0, 25.2.0,
  25.3.0, 26.0.0 and 26.4.0 do not.

The HTTPS tests of this suite (tests/integration/test_https.py, under ``filterwarnings =
error``) and of the wheel check (ci/user_suite) fail on a combination that warns; this test
keeps the exclusions in pyproject.toml that stop pip from choosing one.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pyopenssl_allows(python: str, version: str) -> bool:
    """Do chaoskit's requirements let pip install pyOpenSSL ``version`` on ``python``?"""
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    env = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    rules = [Requirement(text) for text in data["project"]["dependencies"]]
    return all(
        r.specifier.contains(version, prereleases=True)
        for r in rules
        if r.name.lower() == "pyopenssl" and (r.marker is None or r.marker.evaluate(env))
    )


@pytest.mark.parametrize(
    ("python", "version", "allowed"),
    [
        ("3.11", "24.3.0", False),
        ("3.11", "24.2.1", True),
        ("3.12", "25.1.0", False),
        ("3.13", "25.1.0", False),
        ("3.12", "25.0.0", True),
        ("3.12", "26.4.0", True),
    ],
)
def test_no_pyopenssl_that_warns_in_the_tls_handshake(python, version, allowed):
    assert pyopenssl_allows(python, version) is allowed
