"""Test setup a team would write: a fake payments server, checkout as a subprocess, the mesh."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chaoskit.testing import Upstream

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def payments() -> Iterator[Upstream]:
    """A fake payments service on a free port: answers 200 to everything, records requests."""
    with Upstream("payments") as up:
        yield up


@pytest.fixture(scope="session")
def chaos_config(payments: Upstream) -> list[object]:
    """The session's mesh: the team's YAML, with payments' endpoint pointed at the fake.

    The later ServiceEntry of the same name replaces the one in mesh/payments.yaml.
    """
    endpoint = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": {"name": "payments"},
        "spec": {
            "hosts": ["payments"],
            "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
            "resolution": "STATIC",
            "endpoints": [{"address": "127.0.0.1", "ports": {"http": payments.port}}],
        },
    }
    return [HERE / "mesh", endpoint]


@pytest.fixture
def checkout(chaos, payments: Upstream) -> Iterator[str]:
    """checkout running as a subprocess whose outbound calls go through the chaos proxy."""
    payments.clear()
    env = {**os.environ, **chaos.env_for("checkout"), "PAYMENTS_URL": "http://payments/pay"}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "checkout.py")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    try:
        yield line.removeprefix("listening on ").strip()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def client() -> Iterator[requests.Session]:
    """Calls checkout directly (never through a proxy)."""
    with requests.Session() as s:
        s.trust_env = False
        yield s
