"""What mitmweb tells its page about the listeners: their names, not chaoskit's mode specs.

mitmweb's page learns the proxy's listeners from two places (mitmproxy 12.x,
``mitmproxy/tools/web/app.py`` and ``master.py``):

- the ``mode`` option — ``GET /options`` and the ``options/update`` WebSocket message
  (``WebMaster._sig_options_update``) — which the footer shows as a badge, the specs joined by
  commas;
- the ``servers`` of ``GET /state`` (``State.get_json``) and of the ``state/update`` message
  (``WebMaster._sig_servers_changed``), keyed by mode spec, which the Capture tab reads.

chaoskit's listeners are mode specs only because mitmproxy needs one per socket: a Gateway's is
``reverse:http://127.0.0.1:9@127.0.0.1:8080`` (a target never dialled), and the admin listener is
one too. :func:`install` makes one mitmweb (``chaoskit proxy --web``) say instead what a user
thinks of — ``forward proxy at 127.0.0.1:15001``, ``gateway 8080 (edge) at 127.0.0.1:8080``,
``TCP redis:6379 at 127.0.0.1:16379`` — from :meth:`chaoskit.proxy.webui.WebView.shown`, with
the admin listener left out. It adds two routes to that Master's tornado application, which
match before mitmweb's own (``Application.add_handlers``), and swaps that Master's two signal
receivers; mitmproxy's classes are untouched. It is the patch ``web.listeners`` of
:mod:`chaoskit.proxy.patch_table`: on a mitmproxy whose code for these differs it is not
installed, and the page shows the specs, as mitmweb does.

The page's Capture tab edits listeners by sending a new ``mode`` list (``PUT /options``); a
chaoskit proxy's listeners come from its command line and configuration, and the names it now
shows are not specs, so such a change is refused with a message saying where they come from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from mitmproxy import optmanager
from mitmproxy.tools.web import app

logger = logging.getLogger("chaoskit")

#: What ``PUT /options`` answers to a change of ``mode`` (the Capture tab shows it).
MODE_REFUSAL = (
    "chaoskit proxy's listeners come from its command line (--listen, --workload, --tcp, "
    "--admin) and the Gateways of its configuration; the web UI cannot change them"
)


class Listener(Protocol):
    """One listener as the page shows it (:class:`chaoskit.proxy.webui.Shown`)."""

    @property
    def label(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def addresses(self) -> tuple[tuple[str, int], ...]: ...
    @property
    def running(self) -> bool: ...
    @property
    def error(self) -> str | None: ...


def servers_json(shown: Sequence[Listener]) -> dict[str, dict[str, Any]]:
    """The ``servers`` of ``/state``: mitmweb's fields (``ServerInstance.to_json``), keyed and
    described by the listener's name."""
    return {
        s.label: {
            "type": s.kind,
            "description": s.name,
            "full_spec": s.label,
            "is_running": s.running,
            "last_exception": s.error,
            "listen_addrs": [list(address) for address in s.addresses],
        }
        for s in shown
    }


def options_json(dumped: dict[str, Any], shown: Sequence[Listener]) -> dict[str, Any]:
    """``optmanager.dump_dicts`` output with the ``mode`` option's value (if there) as names."""
    if "mode" in dumped:
        dumped = {**dumped, "mode": {**dumped["mode"], "value": [s.label for s in shown]}}
    return dumped


def _shown(master: Any) -> Sequence[Listener] | None:
    """The listeners of ``master``'s chaoskit proxy (``None``: not chaoskit's mitmweb, or they
    cannot be named: the page then gets mitmweb's own view, since these run inside mitmproxy's
    option and server updates, which an exception would break)."""
    view = master.addons.get("webview")
    shown = getattr(view, "shown", None)
    if not callable(shown):
        return None
    try:
        return list(shown())
    except Exception:
        logger.warning("chaoskit: cannot name the listeners for the web UI", exc_info=True)
        return None


class StateHandler(app.State):
    """``GET /state`` with the listeners named (the rest as mitmweb's)."""

    def get(self) -> None:
        state = app.State.get_json(self.master)
        shown = _shown(self.master)
        if shown is not None:
            state["servers"] = servers_json(shown)
        self.write(state)


class OptionsHandler(app.Options):
    """``GET /options`` with ``mode`` named; ``PUT /options`` refuses a ``mode`` change."""

    def get(self) -> None:
        dumped = optmanager.dump_dicts(self.master.options)
        shown = _shown(self.master)
        self.write(options_json(dumped, shown) if shown is not None else dumped)

    def put(self) -> None:
        if "mode" in self.json:
            raise app.APIError(400, MODE_REFUSAL)
        super().put()


class _Receivers:
    """The Master's ``state/update`` and ``options/update`` messages, with the names."""

    def __init__(self, master: Any) -> None:
        self.master = master

    def servers_changed(self) -> None:
        shown = _shown(self.master)
        if shown is None:  # not chaoskit's: mitmweb's own message
            self.master._sig_servers_changed()
            return
        payload = {"servers": servers_json(shown)}
        app.ClientConnection.broadcast(type="state/update", payload=payload)

    def options_update(self, updated: set[str]) -> None:
        shown = _shown(self.master) if "mode" in updated else None
        if shown is None:  # another option, or not chaoskit's: mitmweb's own message
            self.master._sig_options_update(updated)
            return
        dumped = optmanager.dump_dicts(self.master.options, updated)
        app.ClientConnection.broadcast(type="options/update", payload=options_json(dumped, shown))


def install(master: Any) -> None:
    """Make ``master`` (a mitmweb ``WebMaster``) show its listeners by name (see the module
    docstring). Call once, before its web server listens."""
    master.app.add_handlers(
        r".*$",
        [(r"/options(?:\.json)?", OptionsHandler), (r"/state(?:\.json)?", StateHandler)],
    )
    receivers = _Receivers(master)
    master._chaoskit_web_state = receivers  # the signals hold their receivers weakly
    master.proxyserver.servers.changed.disconnect(master._sig_servers_changed)
    master.proxyserver.servers.changed.connect(receivers.servers_changed)
    master.options.changed.disconnect(master._sig_options_update)
    master.options.changed.connect(receivers.options_update)
