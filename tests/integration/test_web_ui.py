"""``chaoskit proxy --web``: what mitmweb shows of a real proxy, read through mitmweb's own API
(``/flows``, ``/options``) with the token the UI needs, as its page reads it.

The proxy runs as the CLI, in its own process, as a user starts it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from chaoskit.proxy import webui
from chaoskit.testing import Upstream
from chaoskit.testing.upstream import free_port
from tests.builders import service_entry
from tests.integration.test_cli_proxy import BIN, start, stop

pytestmark = pytest.mark.skipif(
    not webui.web_ui_is_safe(), reason="mitmproxy < 11.1.2: --web is refused"
)


@dataclass
class WebProxy:
    listen: int
    admin: int
    web: int
    token: str
    session: requests.Session  # direct: ignores proxy variables of the environment

    def ui(self, path: str) -> Any:
        """GET one of mitmweb's API paths, as its page does (with the token)."""
        r = self.session.get(
            f"http://127.0.0.1:{self.web}{path}", params={"token": self.token}, timeout=10
        )
        r.raise_for_status()
        return r.json()

    def set_option(self, **values: object) -> None:
        """Change mitmweb options as its options dialog does: PUT with the token and the XSRF
        double-submit (the same value as cookie and header, as tornado checks it)."""
        self.session.cookies.set("_mitmproxy_xsrf", "chaoskit-test", domain="127.0.0.1")
        r = self.session.put(
            f"http://127.0.0.1:{self.web}/options",
            params={"token": self.token},
            json=values,
            headers={"X-XSRFToken": "chaoskit-test"},
            timeout=10,
        )
        r.raise_for_status()

    def get(self, url: str, proxy: str | None = None) -> requests.Response:
        proxies = {"http": proxy} if proxy else None
        return self.session.get(url, proxies=proxies, timeout=10)


@pytest.fixture
def web_proxy(tmp_path: Path) -> Iterator[WebProxy]:
    with Upstream("web") as up, requests.Session() as session:
        session.trust_env = False
        (tmp_path / "web.yaml").write_text(service_entry("web", up.port))
        listen, admin, web = free_port(), free_port(), free_port()
        proc, out, _err = start(
            [str(BIN / "chaoskit"), "proxy", str(tmp_path / "web.yaml"), "--listen",
             f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}", "--web", str(web)], tmp_path)  # fmt: skip
        try:
            ready = out.wait_for("chaoskit proxy ready")
            match = re.search(r"web=http://127\.0\.0\.1:\d+/\?token=(\w+)", ready)
            assert match, ready
            yield WebProxy(listen, admin, web, match.group(1), session)
        finally:
            stop(proc)


def test_the_flow_list_shows_mesh_traffic_without_admin_requests(web_proxy: WebProxy):
    p = web_proxy
    assert p.get(f"http://127.0.0.1:{p.admin}/ready").status_code == 200
    named = f"http://productpage:x@127.0.0.1:{p.listen}"
    assert p.get("http://web/x", proxy=named).status_code == 200
    assert p.get(f"http://127.0.0.1:{p.admin}/stats").status_code == 200
    flows = p.ui("/flows")
    assert [f["request"]["path"] for f in flows] == ["/x"]
    assert flows[0]["comment"].startswith("from productpage; route ")


def test_the_footer_shows_where_the_proxy_listens(web_proxy: WebProxy):
    options = web_proxy.ui("/options")
    shown = (options["listen_host"]["value"], options["listen_port"]["value"])
    assert shown == ("127.0.0.1", web_proxy.listen)  # not mitmweb's default "*:8080"


def test_a_view_filter_set_in_the_ui_still_applies_and_admin_flows_stay_hidden(
    web_proxy: WebProxy,
):
    p = web_proxy
    for path in ("/keep", "/drop"):
        p.get(f"http://web{path}", proxy=f"http://127.0.0.1:{p.listen}")
    p.set_option(view_filter="!~u /drop")  # the admin request would match it
    p.get(f"http://127.0.0.1:{p.admin}/ready")
    assert [f["request"]["path"] for f in p.ui("/flows")] == ["/keep"]
