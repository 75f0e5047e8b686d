"""The registry of chaoskit's patches of mitmproxy: each one's version guard (the installed
mitmproxy's code is code chaoskit was checked against), each one in place after ``apply()``,
and what happens to a patch whose code is unknown (refused, loudly)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mitmproxy import http, options
from mitmproxy.addonmanager import AddonManager
from mitmproxy.master import Master

from chaoskit.proxy import patches
from chaoskit.proxy.dispatch import DispatchAddonManager
from chaoskit.proxy.patches import Code, Patch, Scope, Status
from chaoskit.proxy.webui import web_ui_is_safe

BY_SCOPE = {scope: [p for p in patches.PATCHES if p.scope is scope] for scope in Scope}


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test applies is forgotten afterwards (status, and which lines were logged)."""
    monkeypatch.setattr(patches, "_status", dict(patches._status))
    monkeypatch.setattr(patches, "_logged", set())


# -- the version guard, per patch -------------------------------------------------------------


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.name)
def test_the_installed_mitmproxy_code_is_code_the_patch_was_checked_against(patch: Patch):
    """Fails after an upgrade of mitmproxy (or h11) that changed code a patch replaces or
    relies on: the patch is then refused at run time. Read the new code, adapt the wrapper if
    need be, and record the fingerprint ``python -m chaoskit.proxy.patches`` prints."""
    if patch.scope is Scope.WEB and not web_ui_is_safe():
        pytest.skip("mitmproxy < 11.1.2: --web is refused, so its patch never applies")
    _, _, value = patches.resolve(patch.replaces.target)
    assert value is not None, f"{patch.replaces.target} is gone"
    assert patches.unknown_code(patch) == []


@pytest.mark.parametrize("patch", BY_SCOPE[Scope.PROCESS], ids=lambda p: p.name)
def test_each_process_patch_is_in_place_after_apply(patch: Patch):
    assert patches.apply()[patch.name] is Status.APPLIED
    assert patches.is_applied(patch.name)
    value = patches.resolve(patch.replaces.target)[2]
    assert patches.stacked(value).count(patch.name) == 1  # wrapped once, not twice
    original = patches.original(value)
    assert original is not value
    assert patches.fingerprint(original) in patch.replaces.known
    assert getattr(original, patches.MARK, None) is None


def test_apply_is_idempotent():
    patches.apply()
    before = {p.name: patches.resolve(p.replaces.target)[2] for p in BY_SCOPE[Scope.PROCESS]}
    patches.apply()
    after = {p.name: patches.resolve(p.replaces.target)[2] for p in BY_SCOPE[Scope.PROCESS]}
    assert before == after


def test_type_checks_are_skipped_only_in_a_process_chaoskit_owns(
    monkeypatch: pytest.MonkeyPatch, fresh_registry: None
):
    original = http.MessageData.__dict__["__post_init__"]
    monkeypatch.setattr(http.MessageData, "__post_init__", original)  # restored afterwards
    assert "message.skip_typechecks" not in patches.apply()
    assert http.MessageData.__post_init__ is original
    assert patches.apply(own_process=True)["message.skip_typechecks"] is Status.APPLIED
    replaced = http.MessageData.__dict__["__post_init__"]
    assert replaced is not original and replaced.__wrapped__ is original
    http.Request.make("GET", "http://a/", b"")  # still builds a message


def _master_with(apply: Callable[[Master], Any]) -> Any:
    async def main() -> Any:
        master = Master(options.Options())
        try:
            apply(master)
            return master.addons
        finally:
            master._legacy_log_events.uninstall()

    return asyncio.run(main())


def test_a_lean_master_gets_the_dispatch_table(fresh_registry: None):
    addons = _master_with(patches.apply)
    assert isinstance(addons, DispatchAddonManager)
    assert patches.is_applied("addons.dispatch")


def test_a_master_whose_dispatch_code_is_unknown_keeps_mitmproxys_manager(
    fresh_registry: None, caplog: pytest.LogCaptureFixture
):
    (dispatch,) = BY_SCOPE[Scope.MASTER]
    unknown = dataclasses.replace(dispatch, replaces=Code(dispatch.replaces.target, {}))
    addons = _master_with(lambda master: patches.apply_one(unknown, master))
    assert type(addons) is AddonManager
    assert not patches.is_applied("addons.dispatch")
    assert "addons.dispatch NOT applied" in caplog.text


# -- the policy for code chaoskit does not know ------------------------------------------------


class Target:
    def method(self) -> str:
        return "mitmproxy's"


def _wrap(original: Callable[[Any], str]) -> Callable[[Any], str]:
    def method(self: Any) -> str:
        return "chaoskit's, around " + original(self)

    return method


def _patch(known: dict[str, str], **kw: Any) -> Patch:
    code = Code(f"{__name__}:Target.method", known)
    return Patch("test.method", code, "a test patch.", lambda: _wrap, **kw)


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> Iterator[None]:
    monkeypatch.setattr(Target, "method", Target.__dict__["method"])
    monkeypatch.setitem(patches._BY_NAME, "test.method", _patch({}))
    monkeypatch.delenv(patches.UNVERIFIED_ENV, raising=False)
    yield


KNOWN = {patches.fingerprint(Target.method) or "": "this test"}


def test_a_patch_of_known_code_is_applied_once(target: None, caplog: pytest.LogCaptureFixture):
    assert patches.apply_one(_patch(KNOWN)) is Status.APPLIED
    assert patches.apply_one(_patch(KNOWN)) is Status.APPLIED
    assert Target().method() == "chaoskit's, around mitmproxy's"
    assert patches.is_applied("test.method") and "test.method" in patches.applied()
    assert caplog.records == []


def test_a_patch_of_unknown_code_is_refused_and_says_so(
    target: None, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="chaoskit")
    assert patches.apply_one(_patch({"0" * 16: "another release"})) is Status.REFUSED
    assert Target().method() == "mitmproxy's"
    assert not patches.is_applied("test.method")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "test.method NOT applied" in record.message
    assert f"Target.method ({patches.fingerprint(Target.method)})" in record.message
    assert "a test patch." in record.message and patches.UNVERIFIED_ENV in record.message
    patches.apply_one(_patch({}))
    assert len(caplog.records) == 1  # said once per process


def test_a_patch_whose_relied_on_code_is_unknown_is_refused(target: None):
    other = Code(f"{__name__}:_wrap", {})
    assert patches.apply_one(_patch(KNOWN, relies_on=(other,))) is Status.REFUSED
    assert Target().method() == "mitmproxy's"


@pytest.mark.parametrize("value", ["", "1", "yes", "APPLY"])
def test_only_the_documented_value_forces_a_patch(
    target: None, monkeypatch: pytest.MonkeyPatch, value: str
):
    monkeypatch.setenv(patches.UNVERIFIED_ENV, value)
    assert patches.apply_one(_patch({})) is Status.REFUSED


def test_an_unknown_patch_can_be_forced_and_is_still_logged(
    target: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv(patches.UNVERIFIED_ENV, "apply")
    assert patches.apply_one(_patch({})) is Status.UNVERIFIED
    assert Target().method() == "chaoskit's, around mitmproxy's"
    assert patches.is_applied("test.method")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_a_missing_target_is_an_error_unless_it_is_not_needed(
    target: None, caplog: pytest.LogCaptureFixture
):
    gone = Code(f"{__name__}:Target.gone", {})
    assert patches.apply_one(Patch("test.method", gone, "x", lambda: _wrap)) is Status.MISSING
    assert "does not exist" in caplog.text
    caplog.clear()
    optional = Patch("test.method", gone, "x", lambda: _wrap, missing_ok=True)
    assert patches.apply_one(optional) is Status.NOT_NEEDED
    assert caplog.records == []


def test_is_applied_refuses_a_name_it_does_not_know():
    with pytest.raises(KeyError):
        patches.is_applied("no.such.patch")


# -- fingerprints --------------------------------------------------------------------------


SOURCE = """
    def read(self, event):
        # a comment
        if event:

            return self.buf  # trailing
"""


def test_a_fingerprint_ignores_comments_blank_lines_and_indentation():
    plain = "def read(self, event):\n    if event:\n        return self.buf\n"
    assert patches.source_fingerprint(SOURCE) == patches.source_fingerprint(plain)


def test_a_fingerprint_changes_with_the_code():
    changed = SOURCE.replace("self.buf", "self.buffer")
    assert patches.source_fingerprint(SOURCE) != patches.source_fingerprint(changed)
    hashed = SOURCE.replace("# trailing", "")
    assert patches.source_fingerprint(hashed.replace("buf", "'#buf'")) != (
        patches.source_fingerprint(SOURCE)
    )  # a '#' inside a string is code


def test_a_function_without_source_has_no_fingerprint():
    assert patches.fingerprint(len) is None
