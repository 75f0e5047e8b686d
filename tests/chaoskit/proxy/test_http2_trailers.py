"""The request's trailers handed from the flow to the HTTP/2 exchange, for the flow's task
only (the integration tests in tests/integration/test_http2_clients.py send them upstream)."""

from __future__ import annotations

import asyncio
import contextvars

from mitmproxy import http
from mitmproxy.test import tflow

from chaoskit.proxy import http2_trailers


def test_the_flows_trailers_are_current_for_its_hook_and_none_for_a_flow_without():
    def hook(flow: http.HTTPFlow) -> http2_trailers.Fields:
        http2_trailers.take(flow)
        return http2_trailers.current()

    with_trailers = tflow.tflow()
    with_trailers.request.trailers = http.Headers([(b"x-checksum", b"abc"), (b"x-n", b"1")])
    context = contextvars.copy_context()
    assert context.run(hook, with_trailers) == (("x-checksum", "abc"), ("x-n", "1"))
    # a hook task started from that context (another flow's) sees none of them
    assert context.run(hook, tflow.tflow()) == ()


def test_tasks_started_by_the_hook_see_them():
    async def main() -> http2_trailers.Fields:
        http2_trailers.set_current((("x-a", "1"),))
        return await asyncio.create_task(asyncio.sleep(0, http2_trailers.current()))

    assert asyncio.run(main()) == (("x-a", "1"),)
    assert http2_trailers.current() == ()
