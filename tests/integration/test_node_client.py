"""The Node.js admin client (examples/node-client/) against a real proxy and upstream: the API
works from another language's stock HTTP client (``fetch``), JSON bodies included."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from chaoskit.proxy.admin_changes import RuntimeLayer

NODE = shutil.which("node")
DEMO = Path(__file__).resolve().parents[2] / "examples" / "node-client" / "demo.mjs"


@pytest.mark.skipif(NODE is None, reason="node is not installed (the Node client needs Node 18+)")
def test_the_node_client_applies_lists_refuses_deletes_and_resets_resources_and_faults(mesh):
    assert NODE is not None
    mesh.set_layer(RuntimeLayer())
    try:
        done = subprocess.run(
            [NODE, str(DEMO), mesh.admin_url, mesh.url, "ratings", "9080"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        mesh.set_layer(RuntimeLayer())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "node client: all steps passed\n"
