"""chaoskit's mitmproxy options: a bad config or seed is refused and the old one stays."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from chaoskit.proxy.core import ChaosCore
from tests.builders import ratings_vs, service_entry


def test_a_valid_config_is_loaded_and_an_invalid_one_keeps_the_old(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(service_entry("ratings", 9) + "---\n" + ratings_vs())
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {}\n")
    core = ChaosCore()

    async def run() -> None:
        with taddons.context(core) as tctx:
            tctx.configure(core.options, chaoskit_config=str(good))
            mesh = core.pipeline.snapshot.mesh
            assert mesh.find_service("ratings.default.svc.cluster.local") is not None
            with pytest.raises(exceptions.OptionsError, match="invalid chaoskit config"):
                tctx.configure(core.options, chaoskit_config=str(bad))
            # mitmproxy rolls the option back: the good file is loaded again, not the bad one
            assert core.pipeline.snapshot.mesh.resources == mesh.resources
            with pytest.raises(exceptions.OptionsError, match="chaoskit_seed"):
                tctx.configure(core.options, chaoskit_seed="not a seed")

    asyncio.run(run())
