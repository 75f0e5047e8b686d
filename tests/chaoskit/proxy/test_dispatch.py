"""DispatchAddonManager calls what mitmproxy's AddonManager calls, in the same order, with the
same error handling — checked side by side against mitmproxy's own manager."""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Callable
from typing import Any

import pytest
from mitmproxy import exceptions, hooks, options
from mitmproxy.master import Master
from mitmproxy.test import tflow

from chaoskit.proxy.dispatch import DispatchAddonManager, use_dispatch


class Recorder:
    def __init__(self, name: str, calls: list[str], **behaviour: Any) -> None:
        self.name = name
        self.calls = calls
        self.behaviour = behaviour

    def _act(self, hook: str) -> None:
        self.calls.append(f"{self.name}.{hook}")
        effect = self.behaviour.get(hook)
        if effect is not None:
            raise effect

    def request(self, flow: Any) -> None:
        self._act("request")

    async def response(self, flow: Any) -> None:
        await asyncio.sleep(0)
        self._act("response")


class Parent(Recorder):
    def __init__(self, name: str, calls: list[str], children: list[Any], **kw: Any) -> None:
        super().__init__(name, calls, **kw)
        self.addons = children


_MADE: list[Master] = []


def new_master(dispatch: bool = True) -> Master:
    """A Master on the running loop; its log handler is removed after the test."""
    master = Master(options.Options())
    _MADE.append(master)
    if dispatch:
        use_dispatch(master)
    return master


@pytest.fixture(autouse=True)
def _uninstall_log_handlers() -> Any:
    yield
    while _MADE:
        _MADE.pop()._legacy_log_events.uninstall()


def run_both(build: Callable[[list[str]], list[Any]], act: Callable[[Master], Any]) -> list[Any]:
    """Run ``act`` once with mitmproxy's manager and once with ours; return both call logs."""
    logs = []
    for dispatch in (False, True):

        async def main(dispatch: bool = dispatch) -> list[str]:
            master = new_master(dispatch)
            calls: list[str] = []
            try:
                master.addons.add(*build(calls))
                await act(master)
            finally:  # its loop closes with asyncio.run; later log records must not go there
                master._legacy_log_events.uninstall()
            return calls

        logs.append(asyncio.run(main()))
    return logs


def flow_hook(name: str) -> Callable[[Master], Any]:
    async def act(master: Master) -> None:
        f = tflow.tflow(resp=True)
        hook = hooks.all_hooks[name](f)
        await master.addons.handle_lifecycle(hook)

    return act


def test_same_calls_in_the_same_order_with_nested_addons() -> None:
    def build(calls: list[str]) -> list[Any]:
        return [
            Recorder("a", calls),
            Parent(
                "p", calls, [Recorder("c1", calls), Parent("c2", calls, [Recorder("g", calls)])]
            ),
            Recorder("z", calls),
        ]

    for hook in ("request", "response"):
        ours, theirs = run_both(build, flow_hook(hook))
        assert ours == theirs
        assert ours == [f"{n}.{hook}" for n in ("a", "p", "c1", "c2", "g", "z")]


def test_an_addon_error_is_logged_and_the_next_top_level_addon_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def build(calls: list[str]) -> list[Any]:
        boom = ValueError("boom")
        return [
            Parent("p", calls, [Recorder("c1", calls, request=boom), Recorder("c2", calls)]),
            Recorder("z", calls),
        ]

    with caplog.at_level(logging.ERROR):
        theirs, ours = run_both(build, flow_hook("request"))
    # the rest of the failing addon's tree is skipped, the next top-level addon runs
    assert ours == theirs == ["p.request", "c1.request", "z.request"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["Addon error: boom"] * 2
    assert all(r.name == "mitmproxy.addonmanager" for r in errors)


def test_addon_halt_stops_the_event() -> None:
    def build(calls: list[str]) -> list[Any]:
        return [Recorder("a", calls, request=exceptions.AddonHalt()), Recorder("z", calls)]

    theirs, ours = run_both(build, flow_hook("request"))
    assert ours == theirs == ["a.request"]


def test_after_a_handler_suspends_errors_and_halts_are_handled_as_mitmproxy_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Recorder.response suspends first: what follows it runs in the coroutine start_lifecycle
    # hands back, with the same error handling as the part that ran at once.
    def build(calls: list[str]) -> list[Any]:
        return [
            Parent("p", calls, [Recorder("c1", calls, response=ValueError("late")),
                                Recorder("c2", calls)]),
            Recorder("h", calls, response=exceptions.AddonHalt()),
            Recorder("z", calls),
        ]  # fmt: skip

    with caplog.at_level(logging.ERROR):
        theirs, ours = run_both(build, flow_hook("response"))
    assert ours == theirs == ["p.response", "c1.response", "h.response"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "Addon error: late"
    ] * 2


def test_start_lifecycle_runs_the_handlers_that_return_and_hands_back_the_rest() -> None:
    class Mixed(Recorder):
        def requestheaders(self, flow: Any) -> None:
            self.calls.append(f"{self.name}.requestheaders")

    async def main() -> list[list[str]]:
        master = new_master()
        calls: list[str] = []
        master.addons.add(Mixed("a", calls), Mixed("b", calls))
        seen = []
        f = tflow.tflow(resp=True)
        assert master.addons.start_lifecycle(hooks.all_hooks["requestheaders"](f)) is None
        seen.append(list(calls))  # both ran, no coroutine to await
        calls.clear()
        rest = master.addons.start_lifecycle(hooks.all_hooks["response"](f))
        assert rest is not None
        seen.append(list(calls))  # a's coroutine is handed back, not yet run
        await rest
        seen.append(list(calls))
        return seen

    assert asyncio.run(main()) == [
        ["a.requestheaders", "b.requestheaders"],
        [],
        ["a.response", "b.response"],
    ]


def test_options_error_propagates() -> None:
    async def main() -> None:
        master = new_master()
        master.addons.add(Recorder("a", [], request=exceptions.OptionsError("bad")))
        await master.addons.handle_lifecycle(hooks.all_hooks["request"](tflow.tflow()))

    with pytest.raises(exceptions.OptionsError):
        asyncio.run(main())


def test_update_follows_a_flow_event_only_when_someone_listens() -> None:
    class Updates(Recorder):
        def update(self, flows: list[Any]) -> None:
            self.calls.append(f"{self.name}.update:{len(flows)}")

    def build(calls: list[str]) -> list[Any]:
        return [Updates("u", calls), Recorder("z", calls)]

    theirs, ours = run_both(build, flow_hook("request"))
    assert ours == theirs == ["u.request", "z.request", "u.update:1"]


def test_the_table_follows_added_and_removed_addons() -> None:
    async def main() -> list[str]:
        master = new_master()
        calls: list[str] = []
        first = Recorder("a", calls)
        master.addons.add(first)
        f = tflow.tflow()
        await master.addons.handle_lifecycle(hooks.all_hooks["request"](f))
        master.addons.add(Recorder("b", calls))
        await master.addons.handle_lifecycle(hooks.all_hooks["request"](f))
        master.addons.remove(first)
        await master.addons.handle_lifecycle(hooks.all_hooks["request"](f))
        return calls

    assert asyncio.run(main()) == ["a.request", "a.request", "b.request", "b.request"]


def test_module_attributes_named_like_hooks_are_ignored_and_non_callables_are_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Odd:
        request = types.ModuleType("request")  # e.g. `from x import request` in a script

    class Broken:
        response = 42

    def build(calls: list[str]) -> list[Any]:
        return [Odd(), Broken(), Recorder("z", calls)]

    with caplog.at_level(logging.ERROR):
        theirs, ours = run_both(build, flow_hook("request"))
        assert ours == theirs == ["z.request"]
        assert not [r for r in caplog.records if r.levelno == logging.ERROR]
        theirs, ours = run_both(build, flow_hook("response"))
    assert ours == theirs == ["z.response"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("not callable" in e for e in errors)


def test_use_dispatch_refuses_a_master_that_already_has_addons() -> None:
    async def main() -> None:
        master = new_master(dispatch=False)
        master.addons.add(Recorder("a", []))
        use_dispatch(master)

    with pytest.raises(RuntimeError, match="before any addon"):
        asyncio.run(main())


def test_the_lean_master_uses_it() -> None:
    from chaoskit.proxy.runtime import make_master

    async def main() -> Any:
        master = make_master(options.Options())
        _MADE.append(master)
        return master.addons

    assert isinstance(asyncio.run(main()), DispatchAddonManager)
