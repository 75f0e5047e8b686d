"""mitmweb's UI beside the proxy: only from a mitmproxy whose UI needs its token.

mitmproxy before 11.1.2 serves mitmweb's API with no authentication (CVE-2025-23217): anyone who
can send a request to it — including through the proxy itself, three requests — can set options
that write and load a script, i.e. run code as the proxy's user. Those releases are the newest pip
installs on Python 3.11 (every fixed release needs Python >= 3.12). So chaoskit serves the UI
(``--web``) only from a fixed mitmproxy, refuses to run inside an unfixed ``mitmweb``, and in any
case never forwards a request to the UI's port (it is one of the proxy's own listeners,
:mod:`chaoskit.proxy.pipeline`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, version

#: The first mitmproxy whose web UI needs a token (GHSA-wg33-5h85-7q5p).
FIXED_VERSION = (11, 1, 2)


def parse_version(text: str) -> tuple[int, ...]:
    """``"12.3.1"`` → ``(12, 3, 1)``; ``"11.1.0.dev5"`` → ``(11, 1, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def web_ui_is_safe(mitmproxy_version: str = version.VERSION) -> bool:
    return parse_version(mitmproxy_version) >= FIXED_VERSION


def refusal(mitmproxy_version: str = version.VERSION) -> str:
    """Why the UI is refused on this mitmproxy, in one paragraph a user can act on."""
    fixed = ".".join(map(str, FIXED_VERSION))
    return (
        f"mitmproxy {mitmproxy_version}'s web UI has no authentication (CVE-2025-23217: anyone "
        f"who can reach it, through the proxy too, can run code as you); it needs mitmproxy >= "
        f"{fixed}, which needs Python >= 3.12 (re-create the venv with python3.12: "
        "scripts/_venv.sh picks it when it is installed)"
    )


def is_web_master(master: Any) -> bool:
    """Is ``master`` mitmweb's (``mitmweb -s``, or ``chaoskit proxy --web``)?"""
    return any(cls.__name__ == "WebMaster" for cls in type(master).__mro__)


def web_url(master: Any) -> str | None:
    """The UI's URL with its token (mitmproxy's own ``WebMaster.web_url``), if it has one."""
    url = getattr(master, "web_url", None)
    return url if isinstance(url, str) else None


def web_address(master: Any) -> tuple[str, int] | None:
    """Where the UI listens, for loop detection: ``(web_host, web_port)`` of a WebMaster."""
    if not is_web_master(master):
        return None
    try:
        return str(master.options.web_host), int(master.options.web_port)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


class _Hiding:
    """A view filter: the user's own (``view_filter``), minus the flows chaoskit hides."""

    def __init__(self, inner: Any, hidden: Callable[[Any], bool]) -> None:
        self.inner = inner
        self.hidden = hidden
        self.pattern: str = getattr(inner, "pattern", "")

    def __call__(self, f: Any) -> bool:
        return not self.hidden(f) and bool(self.inner(f))

    def __str__(self) -> str:
        return str(self.inner)


class WebView:
    """What mitmweb shows beside ``chaoskit proxy --web``: the mesh's traffic, and where it enters.

    - The admin listener's requests (``/stats``, ``/ready``, a scraper every few seconds) are
      the proxy's own bookkeeping, not the mesh's traffic: they are left out of the flow list,
      through the view's filter (so a ``view_filter`` the user sets still applies), and dropped
      from mitmweb's store once answered.
    - mitmweb's footer shows ``listen_host:listen_port`` as "the proxy's address", and 8080
      when that option is unset; chaoskit's listeners are mode specs with their own addresses,
      so those two options are set to where the forward proxy really listens (they bind
      nothing: every mode names its address).
    """

    def __init__(self, listen_spec: str, *, admin_spec: str | None) -> None:
        #: the mode specs of the forward-proxy listener (``regular@127.0.0.1:15001``) and of
        #: the admin listener (``None``: the proxy has none)
        self.listen_spec = listen_spec
        self.admin_spec = admin_spec
        self._answering: list[Any] = []

    def hidden(self, flow: Any) -> bool:
        """Is ``flow`` one of the admin listener's?"""
        mode = getattr(flow.client_conn, "proxy_mode", None)
        return self.admin_spec is not None and getattr(mode, "full_spec", None) == self.admin_spec

    def _view(self) -> Any:
        return getattr(ctx.master, "view", None)

    def _hide(self) -> None:
        view = self._view()
        if view is not None and not isinstance(view.filter, _Hiding):
            view.set_filter(_Hiding(view.filter, self.hidden))

    def configure(self, updated: set[str]) -> None:
        if "view_filter" in updated:  # the view has just installed the user's filter
            self._hide()

    def running(self) -> None:
        self._hide()
        ctx.master.addons.get("proxyserver").servers.changed.connect(self._show_listen_address)
        self._show_listen_address()

    def _show_listen_address(self) -> None:
        for server in ctx.master.addons.get("proxyserver").servers:
            if server.mode.full_spec == self.listen_spec and server.listen_addrs:
                host, port = server.listen_addrs[0][:2]
                if (ctx.options.listen_host, ctx.options.listen_port) != (host, port):
                    ctx.options.update(listen_host=str(host), listen_port=int(port))

    def requestheaders(self, flow: Any) -> None:
        if not self.hidden(flow):
            return
        # Forget the hidden flows already answered (a flow still live would be killed).
        view = self._view()
        done = [f for f in self._answering if not f.live]
        if view is not None:
            for f in done:  # one at a time: removing several at once logs an alert in the UI
                view.remove([f])
        self._answering = [f for f in self._answering if f.live]
        self._answering.append(flow)
