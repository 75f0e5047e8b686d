"""``chaoskit proxy --web``: what mitmweb shows of a real proxy, read through mitmweb's own API
(``/flows``, ``/options``, ``/state``) with the token the UI needs, as its page reads it.

The proxy runs as the CLI, in its own process, as a user starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from chaoskit.proxy import web_state, webui
from chaoskit.testing import Upstream
from chaoskit.testing.upstream import free_port
from tests.builders import service_entry, tcp_service_entry
from tests.integration.test_cli_proxy import BIN, Lines, gateway_mesh, start, stop

pytestmark = pytest.mark.skipif(
    not webui.web_ui_is_safe(), reason="mitmproxy < 11.1.2: --web is refused"
)


@dataclass
class WebProxy:
    listen: int
    admin: int
    web: int
    workload: int  # productpage's own listener
    gateway: int  # the Gateway "edge"'s port, in the YAML and bound
    tcp: int  # the TCP listener of redis:6379
    token: str
    config: Path  # the YAML it watches
    err: Lines  # its stderr
    session: requests.Session  # direct: ignores proxy variables of the environment

    def ui(self, path: str) -> Any:
        """GET one of mitmweb's API paths, as its page does (with the token)."""
        r = self.session.get(
            f"http://127.0.0.1:{self.web}{path}", params={"token": self.token}, timeout=10
        )
        r.raise_for_status()
        return r.json()

    def put_options(self, **values: object) -> requests.Response:
        """Change mitmweb options as its options dialog does: PUT with the token and the XSRF
        double-submit (the same value as cookie and header, as tornado checks it)."""
        self.session.cookies.set("_mitmproxy_xsrf", "chaoskit-test", domain="127.0.0.1")
        return self.session.put(
            f"http://127.0.0.1:{self.web}/options",
            params={"token": self.token},
            json=values,
            headers={"X-XSRFToken": "chaoskit-test"},
            timeout=10,
        )

    def set_option(self, **values: object) -> None:
        self.put_options(**values).raise_for_status()

    def add_gateway(self, name: str) -> int:
        """Add a Gateway ``name`` on a free port to the YAML (the proxy reloads it); its port."""
        port = free_port()
        added = gateway_mesh(port).replace("edge", name)
        self.config.write_text(f"{self.config.read_text()}---\n{added}")
        return port

    def get(self, url: str, proxy: str | None = None) -> requests.Response:
        proxies = {"http": proxy} if proxy else None
        return self.session.get(url, proxies=proxies, timeout=10)


WORKLOAD = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage}
spec: {labels: {app: productpage}}
"""


def run_web_proxy(tmp_path: Path, command: list[str]) -> Iterator[WebProxy]:
    """``command`` (``chaoskit``, or a Python that runs its main) ``proxy --web`` with a
    forward proxy, productpage's own listener, the Gateway ``edge``, a TCP listener for redis
    and the admin listener."""
    with Upstream("web") as up, requests.Session() as session:
        session.trust_env = False
        listen, admin, web, gateway = free_port(), free_port(), free_port(), free_port()
        config = tmp_path / "web.yaml"
        config.write_text(
            "---\n".join(
                [service_entry("web", up.port), WORKLOAD, gateway_mesh(gateway),
                 tcp_service_entry("redis", 6379, up.port)]
            )
        )  # fmt: skip
        proc, out, err = start(
            [*command, "proxy", str(config), "--listen", f"127.0.0.1:{listen}", "--admin",
             f"127.0.0.1:{admin}", "--web", str(web), "--workload", "productpage=0", "--tcp",
             "redis:6379=0"], tmp_path)  # fmt: skip
        try:
            ready = out.wait_for("chaoskit proxy ready")
            token = re.search(r"web=http://127\.0\.0\.1:\d+/\?token=(\w+)", ready)
            tcp = re.search(r" tcp=redis:6379=127\.0\.0\.1:(\d+)", ready)
            workload = re.search(r" workloads=productpage=(\d+)", ready)
            assert token and tcp and workload, ready
            yield WebProxy(
                listen, admin, web, int(workload[1]), gateway, int(tcp[1]), token[1], config, err,
                session,
            )  # fmt: skip
        finally:
            stop(proc)


@pytest.fixture
def web_proxy(tmp_path: Path) -> Iterator[WebProxy]:
    yield from run_web_proxy(tmp_path, [str(BIN / "chaoskit")])


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


#: How chaoskit's listeners are spelled for mitmproxy: never what the page shows.
INTERNAL = ("reverse:", "regular@", "127.0.0.1:9@")


def test_the_page_names_each_listener_by_what_it_serves_and_hides_the_admin_one(
    web_proxy: WebProxy,
):
    p = web_proxy
    names = [
        f"forward proxy at 127.0.0.1:{p.listen}",
        f"forward proxy of productpage at 127.0.0.1:{p.workload}",
        f"gateway {p.gateway} (edge) at 127.0.0.1:{p.gateway}",
        f"TCP redis:6379 at 127.0.0.1:{p.tcp}",
    ]
    mode = p.ui("/options")["mode"]["value"]  # the footer's badge
    servers = p.ui("/state")["servers"]  # the Capture tab
    assert mode == names and list(servers) == names
    assert [s["listen_addrs"] for s in servers.values()] == [
        [["127.0.0.1", port]] for port in (p.listen, p.workload, p.gateway, p.tcp)
    ]
    assert all(s["is_running"] for s in servers.values())
    shown = json.dumps([mode, servers, p.ui("/events")])
    for internal in (*INTERNAL, f"127.0.0.1:{p.admin}"):
        assert internal not in shown
    with requests.Session() as stranger:  # the named views need the UI's token, as mitmweb's
        stranger.trust_env = False
        for path in ("/state", "/options"):
            r = stranger.get(f"http://127.0.0.1:{p.web}{path}", timeout=10)
            assert r.status_code == 403 and "forward proxy" not in r.text


def test_the_page_cannot_change_the_listeners(web_proxy: WebProxy):
    """The Capture tab sends a new mode list when a listener is switched or edited."""
    p = web_proxy
    r = p.put_options(mode=[f"regular@127.0.0.1:{free_port()}"])
    assert r.status_code == 400 and web_state.MODE_REFUSAL in r.text
    assert p.ui("/options")["mode"]["value"][0] == f"forward proxy at 127.0.0.1:{p.listen}"
    assert p.get("http://web/x", proxy=f"http://127.0.0.1:{p.listen}").status_code == 200


async def updates(p: WebProxy, change: Callable[[], object]) -> dict[str, Any]:
    """The page's WebSocket updates of the listeners (``state/update``, and ``options/update``
    of ``mode``) that ``change`` (run off the loop) makes the proxy send."""
    got: dict[str, Any] = {}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{p.web}/updates?token={p.token}") as ws,
    ):
        await asyncio.to_thread(change)
        async with asyncio.timeout(20):
            while len(got) < 2:
                message = await ws.receive_json()
                if message["type"] == "state/update" or "mode" in message.get("payload", ()):
                    got[message["type"]] = message["payload"]
    return got


def test_the_pages_updates_name_the_listeners_a_reload_opens(web_proxy: WebProxy):
    p = web_proxy
    ports: list[int] = []
    got = asyncio.run(updates(p, lambda: ports.append(p.add_gateway("side"))))
    side = ports[0]
    mode = got["options/update"]["mode"]["value"]
    servers = got["state/update"]["servers"]
    assert mode[:2] == [
        f"forward proxy at 127.0.0.1:{p.listen}",
        f"forward proxy of productpage at 127.0.0.1:{p.workload}",
    ]
    assert any(m.startswith("gateway") and m.endswith(f" at 127.0.0.1:{side}") for m in mode)
    assert list(servers) == mode
    for internal in (*INTERNAL, f"127.0.0.1:{p.admin}"):
        assert internal not in json.dumps([mode, servers])
    # The reload done, the new Gateway has its YAML port and name.
    p.err.wait_for("chaoskit proxy: reloaded")
    assert f"gateway {side} (side) at 127.0.0.1:{side}" in p.ui("/state")["servers"]


#: mitmweb's code changed under chaoskit: one of the functions the patch web.listeners relies
#: on has code of no release it was checked against (a wrapper, same behaviour).
CHANGED_MITMWEB = """\
import sys
from mitmproxy.tools.web.master import WebMaster
from chaoskit.cli import main
original = WebMaster._sig_options_update
def _sig_options_update(self, updated):
    original(self, updated)
WebMaster._sig_options_update = _sig_options_update
sys.exit(main())
"""


def test_on_web_code_it_does_not_know_the_page_shows_the_specs_and_a_warning_says_why(
    tmp_path: Path,
):
    with contextlib.closing(
        run_web_proxy(tmp_path, [sys.executable, "-c", CHANGED_MITMWEB])
    ) as proxies:  # fmt: skip
        p = next(proxies)
        spec = f"reverse:http://127.0.0.1:9@127.0.0.1:{p.gateway}"  # mitmweb's own view
        assert spec in p.ui("/state")["servers"]
        assert spec in p.ui("/options")["mode"]["value"]
        assert p.get("http://web/x", proxy=f"http://127.0.0.1:{p.listen}").status_code == 200
        warning = [e["message"] for e in p.ui("/events") if "web.listeners" in e["message"]]
        assert warning and "NOT applied" in warning[0], p.ui("/events")
        assert "WARNING: chaoskit: patch web.listeners NOT applied" in p.err.wait_for("web.")


#: A failure while naming the listeners (a bug of chaoskit's, say).
NAMING_FAILS = """\
import sys
from chaoskit.proxy.webui import WebView
from chaoskit.cli import main
def shown(self):
    raise RuntimeError("cannot name")
WebView.shown = shown
sys.exit(main())
"""


def test_listeners_it_cannot_name_leave_the_page_as_mitmweb_has_it_and_reloads_working(
    tmp_path: Path,
):
    """The names are made inside mitmproxy's option and server updates: a failure there must
    not fail a reload."""
    with contextlib.closing(
        run_web_proxy(tmp_path, [sys.executable, "-c", NAMING_FAILS])
    ) as proxies:
        p = next(proxies)
        side = p.add_gateway("side")
        p.err.wait_for("chaoskit proxy: reloaded")
        assert p.get(f"http://127.0.0.1:{side}/").text == "side"
        assert f"reverse:http://127.0.0.1:9@127.0.0.1:{side}" in p.ui("/state")["servers"]
        assert "cannot name the listeners for the web UI" in p.err.wait_for("cannot name")
