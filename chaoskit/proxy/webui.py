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

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mitmproxy import ctx, version
from mitmproxy.proxy import mode_specs
from mitmproxy.utils import human

from chaoskit.config.gateway import Gateway
from chaoskit.proxy import patches

if TYPE_CHECKING:
    from chaoskit.config.mesh import Mesh
    from chaoskit.proxy.listeners import ListenerTable
    from chaoskit.proxy.tcp_connection import TcpTarget

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


@dataclasses.dataclass(frozen=True)
class Shown:
    """One of chaoskit's listeners as mitmweb's page shows it (:mod:`chaoskit.proxy.web_state`)."""

    #: what it is: ``forward proxy``, ``forward proxy of productpage``, ``gateway 8080 (edge)``,
    #: ``TCP redis:6379``
    name: str
    #: mitmweb's server type: ``regular`` (an HTTP proxy, in the Capture tab), ``gateway``,
    #: ``tcp`` (no Capture section of mitmweb's: they are chaoskit's)
    kind: str
    #: where it listens (bound)
    addresses: tuple[tuple[str, int], ...]
    running: bool = True
    error: str | None = None

    @property
    def label(self) -> str:
        """``forward proxy at 127.0.0.1:15001``: the name the page shows."""
        where = " and ".join(human.format_address(address) for address in self.addresses)
        return f"{self.name} at {where}" if where else self.name


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
    - The listeners themselves (the footer's mode badge, the Capture tab) are named by what
      they serve, with their addresses (:meth:`shown`), not by their mode specs, and the admin
      listener is left out: the patch ``web.listeners`` (:mod:`chaoskit.proxy.web_state`),
      installed on mitmweb's Master when this addon is loaded into it.
    """

    def __init__(
        self,
        listen_spec: str,
        *,
        admin_spec: str | None,
        listeners: ListenerTable | None = None,
        mesh: Callable[[], Mesh] | None = None,
        tcp: Mapping[TcpTarget, tuple[str, int]] | None = None,
    ) -> None:
        #: the mode specs of the forward-proxy listener (``regular@127.0.0.1:15001``) and of
        #: the admin listener (``None``: the proxy has none)
        self.listen_spec = listen_spec
        self.admin_spec = admin_spec
        #: what the other listeners serve: the workload or Gateway port of a bound port
        #: (:class:`~chaoskit.proxy.listeners.ListenerTable`), the Gateways of the running
        #: configuration, and the TCP listeners (target → bound address), read when shown
        self.listeners = listeners
        self.mesh = mesh
        self.tcp = tcp if tcp is not None else {}
        self._answering: list[Any] = []

    def shown(self) -> list[Shown]:
        """chaoskit's listeners as the page shows them: the forward proxy, each workload's,
        each Gateway port's (in mitmproxy's ``mode`` order), then the TCP ones; not the admin
        listener."""
        servers = {s.mode.full_spec: s for s in ctx.master.addons.get("proxyserver").servers}
        out = []
        for spec in ctx.options.mode:
            if spec == self.admin_spec:
                continue
            mode = mode_specs.ProxyMode.parse(spec)
            server = servers.get(spec)
            addresses: tuple[tuple[str, int], ...] = ()
            if server is not None and server.listen_addrs:
                addresses = tuple((str(a[0]), int(a[1])) for a in server.listen_addrs)
            elif mode.custom_listen_port is not None:  # not listening (yet)
                addresses = ((mode.listen_host(), mode.custom_listen_port),)
            port = addresses[0][1] if addresses else 0
            name, kind = self._name(spec, mode, port)
            error = server.last_exception if server is not None else None
            running = server is not None and server.is_running
            out.append(Shown(name, kind, addresses, running, str(error) if error else None))
        for target, address in sorted(self.tcp.items(), key=lambda item: item[1]):
            out.append(Shown(f"TCP {target}", "tcp", (address,)))
        return out

    def _name(self, spec: str, mode: mode_specs.ProxyMode, port: int) -> tuple[str, str]:
        if spec == self.listen_spec:
            return "forward proxy", "regular"
        if isinstance(mode, mode_specs.RegularMode):
            workload = self.listeners.workload_ports.get(port) if self.listeners else None
            return (f"forward proxy of {workload}" if workload else "forward proxy"), "regular"
        if isinstance(mode, mode_specs.ReverseMode):
            return self._gateway(port), "gateway"
        return mode.description, mode.type_name  # a mode chaoskit does not make

    def _gateway(self, port: int) -> str:
        """``gateway 8080 (edge)``: the Gateway port of the YAML, and the Gateways serving it."""
        declared = self.listeners.gateway_ports.get(port) if self.listeners else None
        if declared is None:  # a reload's new Gateway, not yet mapped
            return "gateway"
        gateways = self.mesh().gateways if self.mesh is not None else ()
        names = sorted(
            {
                gw.name
                for gw in gateways
                if isinstance(gw, Gateway)
                for server in gw.servers
                if server.is_http and server.port is not None and server.port.number == declared
            }
        )
        return f"gateway {declared} ({', '.join(names)})" if names else f"gateway {declared}"

    def load(self, loader: Any) -> None:
        if is_web_master(ctx.master):  # before its web server listens
            patches.apply(web_master=ctx.master)

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
