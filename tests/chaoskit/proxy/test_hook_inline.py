"""Hooks finished in the event that raised them (chaoskit.proxy.hook_inline), through a real
lean Master on a loopback socket: a hook whose handlers return needs no task; one whose
handler suspends, or that intercepts its flow, is finished as mitmproxy's hook task does."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mitmproxy import http

from chaoskit.proxy import patches
from chaoskit.proxy.runtime import ProxyRuntime


class Answer:
    """Records which task ran each hook and answers every request itself (no upstream)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, asyncio.Task[Any] | None]] = []

    def _note(self, hook: str) -> None:
        self.calls.append((hook, asyncio.current_task()))

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._note("requestheaders")

    def request(self, flow: http.HTTPFlow) -> None:
        self._note("request")
        if flow.response is None:
            flow.response = http.Response.make(200, b"answered", {"x-by": "answer"})

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._note("responseheaders")

    def response(self, flow: http.HTTPFlow) -> None:
        self._note("response")


class Slow:
    """An async request hook that really suspends, then answers."""

    async def request(self, flow: http.HTTPFlow) -> None:
        await asyncio.sleep(0.05)
        flow.response = http.Response.make(201, b"slow")


class Hold:
    """Intercepts each request and resumes it 300 ms later, from the loop."""

    def request(self, flow: http.HTTPFlow) -> None:
        flow.intercept()
        asyncio.get_running_loop().call_later(0.3, flow.resume)


class Broken:
    def request(self, flow: http.HTTPFlow) -> None:
        raise RuntimeError("broken addon")


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    started: list[ProxyRuntime] = []

    def start(*addons: Any) -> str:
        runtime = ProxyRuntime(list(addons), ["regular@127.0.0.1:0"], confdir=str(tmp_path))
        runtime.start()
        started.append(runtime)
        (host, port), *_ = runtime.bound.values()
        return f"http://{host}:{port}"

    yield start
    for runtime in started:
        runtime.stop()


def get(proxy: str) -> requests.Response:
    with requests.Session() as s:
        s.trust_env = False
        return s.get("http://svc.test/x", proxies={"http": proxy}, timeout=10)


def test_hooks_whose_handlers_return_run_in_the_connection_task_not_a_hook_task(run: Any) -> None:
    answer = Answer()
    reply = get(run(answer))
    assert (reply.status_code, reply.text) == (200, "answered")
    assert [hook for hook, _ in answer.calls] == [
        "requestheaders", "request", "responseheaders", "response",
    ]  # fmt: skip
    # mitmproxy's path runs each in a task of its own (eagerly, so still in order)
    assert len({id(task) for _, task in answer.calls}) == 1
    assert patches.is_applied("hooks.inline")


def test_a_handler_that_suspends_is_awaited_and_the_addons_after_it_still_run(run: Any) -> None:
    answer = Answer()
    reply = get(run(Slow(), answer))
    # Slow answered after its sleep; Answer's request hook ran after it and kept that answer.
    assert (reply.status_code, reply.text) == (201, "slow")
    assert [hook for hook, _ in answer.calls] == [
        "requestheaders", "request", "responseheaders", "response",
    ]  # fmt: skip
    tasks = {hook: id(task) for hook, task in answer.calls}
    # The request hook is finished by a task of its own, as mitmproxy's would be; the response
    # hook is raised while that task feeds the request's completion through the layers, and
    # needs none; responseheaders ran there too.
    assert tasks["request"] != tasks["requestheaders"]
    assert tasks["response"] == tasks["responseheaders"] == tasks["request"]


def test_an_intercepted_flow_waits_until_it_is_resumed(run: Any) -> None:
    answer = Answer()
    proxy = run(Hold(), answer)
    started = time.monotonic()
    reply = get(proxy)
    assert reply.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert [hook for hook, _ in answer.calls][-1] == "response"


def test_a_failing_handler_is_logged_and_the_next_addon_still_answers(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="mitmproxy.addonmanager")
    reply = get(run(Broken(), Answer()))
    assert (reply.status_code, reply.text) == (200, "answered")
    assert any("Addon error: broken addon" in r.getMessage() for r in caplog.records)
