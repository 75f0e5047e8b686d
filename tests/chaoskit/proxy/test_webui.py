"""mitmweb's UI only from a mitmproxy whose UI needs its token (CVE-2025-23217)."""

from __future__ import annotations

import asyncio

import pytest

from chaoskit.errors import ProxyError
from chaoskit.proxy import webui


@pytest.mark.parametrize(
    ("version", "safe"),
    [("11.0.2", False), ("11.1.0", False), ("11.1.2", True), ("11.1.3", True), ("12.3.1", True),
     ("10.4.2", False), ("13.0.0.dev4", True)],
)  # fmt: skip
def test_which_mitmproxy_serves_a_ui_with_authentication(version, safe):
    assert webui.web_ui_is_safe(version) is safe


def test_the_refusal_says_what_to_do():
    text = webui.refusal("11.0.2")
    assert "CVE-2025-23217" in text and "11.1.2" in text and "Python >= 3.12" in text


def test_the_python_api_refuses_the_web_ui_on_an_unfixed_mitmproxy(monkeypatch):
    from chaoskit.proxy.api import Proxy

    monkeypatch.setattr(webui, "web_ui_is_safe", lambda *version: False)  # as on Python 3.11
    with pytest.raises(ProxyError, match="CVE-2025-23217"):
        Proxy(web_port=0)


def test_the_addon_refuses_to_run_inside_an_unfixed_mitmweb(monkeypatch):
    from mitmproxy.test import taddons

    from chaoskit.proxy.core import ChaosCore

    class WebMaster:  # what mitmweb's master is called; is_web_master looks at the class name
        pass

    monkeypatch.setattr(webui, "web_ui_is_safe", lambda *version: False)
    addon = ChaosCore()
    stopped = []

    async def run() -> None:  # inside a running loop: taddons would otherwise make its own
        with taddons.context(addon) as tctx:
            tctx.master.__class__ = type("WebMaster", (type(tctx.master), WebMaster), {})
            monkeypatch.setattr(tctx.master, "shutdown", lambda: stopped.append(True))
            await addon.options.running()

    asyncio.run(run())
    assert stopped == [True]


ADMIN = "reverse:http://127.0.0.1:9@127.0.0.1:15000"


def test_admin_flows_are_hidden_and_forgotten_once_answered():
    from mitmproxy.addons.view import View
    from mitmproxy.proxy.mode_specs import ProxyMode
    from mitmproxy.test import taddons, tflow

    view = View()
    web = webui.WebView("regular@127.0.0.1:15001", admin_spec=ADMIN)

    def arrive(mode: str | None) -> object:
        flow = tflow.tflow(live=True)
        if mode is not None:
            flow.client_conn.proxy_mode = ProxyMode.parse(mode)
        view.requestheaders(flow)  # mitmweb's view first, as in WebMaster's addon order
        web.requestheaders(flow)
        return flow

    async def run() -> None:  # inside a running loop: mitmproxy 11's taddons leaks its own
        with taddons.context(view, web) as tctx:
            tctx.master.view = view  # what WebMaster has
            web.configure({"view_filter"})
            first = arrive(ADMIN)
            mesh = arrive(None)
            assert list(view) == [mesh] and view.store_count() == 2  # hidden, kept while live
            first.live = False  # answered
            arrive(ADMIN)
            assert list(view) == [mesh] and view.store_count() == 2  # answered one is gone
            assert first.error is None  # forgotten, never killed

    asyncio.run(run())
