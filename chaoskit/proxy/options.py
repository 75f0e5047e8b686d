"""chaoskit's mitmproxy options and lifecycle: ``--set chaoskit_config=…`` /
``chaoskit_seed=…`` under ``mitmdump -s`` and mitmweb, the options chaoskit needs mitmproxy to
run with, and the upstream client's start and stop."""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import ctx, exceptions

from chaoskit.config import validate_paths
from chaoskit.proxy import webui
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.upstream import UpstreamClient
from chaoskit.rng import parse_seed

logger = logging.getLogger("chaoskit")
#: Request bodies are buffered; above this mitmproxy answers 413 instead of growing memory.
MAX_REQUEST_BODY = "64m"


class ChaosOptions:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def load(self, loader: Any) -> None:
        loader.add_option(
            "chaoskit_config",
            str,
            "",
            "Istio/chaoskit YAML file or folder (several: comma-separated).",
        )
        loader.add_option(
            "chaoskit_seed", str, "", "Seed for every random decision (default: random)."
        )

    def configure(self, updated: set[str]) -> None:
        if "chaoskit_seed" in updated and ctx.options.chaoskit_seed:
            try:
                self.pipeline.set_seed(parse_seed(ctx.options.chaoskit_seed))
            except ValueError as e:
                raise exceptions.OptionsError(f"chaoskit_seed: {e}") from None
        if "chaoskit_config" in updated and ctx.options.chaoskit_config:
            paths = [p.strip() for p in ctx.options.chaoskit_config.split(",") if p.strip()]
            v = validate_paths(paths)
            if not v.ok:
                # OptionsError makes mitmproxy roll the option back: the old config stays.
                lines = [str(i) for i in v.issues.errors]
                raise exceptions.OptionsError("invalid chaoskit config:\n" + "\n".join(lines))
            self.pipeline.set_mesh(v.mesh)
            logger.info(
                f"chaoskit: loaded {len(v.resources)} resources, seed {self.pipeline.seeds.seed}"
            )

    async def running(self) -> None:
        # Under stock mitmdump/mitmweb: never dial upstream on connect (chaoskit forwards
        # itself, and an eager connection would bypass a connect fault), and keep the Host
        # header in reverse mode so Gateway host matching works.
        if webui.is_web_master(ctx.master) and not webui.web_ui_is_safe():
            # Serving flows (and options) through an unauthenticated API beside a proxy that
            # anyone local can use is a remote-code-execution hole: refuse to be part of it.
            logger.error(f"chaoskit: refusing to run inside mitmweb: {webui.refusal()}")
            ctx.master.shutdown()
            return
        ctx.options.update(connection_strategy="lazy", keep_host_header=True)
        if not ctx.options.body_size_limit:  # request bodies are buffered: bound them
            ctx.options.update(body_size_limit=MAX_REQUEST_BODY)
        client = self.pipeline.client
        if isinstance(client, UpstreamClient):
            await client.start()
        logger.info(f"chaoskit: seed {self.pipeline.seeds.seed}")

    async def done(self) -> None:
        client = self.pipeline.client
        if isinstance(client, UpstreamClient):
            await client.close()
