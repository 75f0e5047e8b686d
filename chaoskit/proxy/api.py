"""``chaoskit.Proxy``: the whole proxy in-process, on free loopback ports, in a background thread.

>>> with chaoskit.Proxy("mesh/", seed=1) as proxy:           # doctest: +SKIP
...     requests.get("http://reviews:9080/", proxies={"http": proxy.url})
...     proxy.records[-1].status

Configuration is layered: ``apply(*sources)`` validates the new sources over the base given at
construction and swaps the result in atomically on the proxy loop; in-flight requests finish on
the snapshot they started with. ``apply()`` with no arguments returns to the base.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from chaoskit.config import Validation
from chaoskit.config.loader import LoadResult
from chaoskit.errors import ProxyError
from chaoskit.netaddr import is_loopback
from chaoskit.proxy import webui
from chaoskit.proxy.admin import ChaosAdmin
from chaoskit.proxy.admin_api import AdminConfigApi
from chaoskit.proxy.admin_changes import RuntimeLayer
from chaoskit.proxy.binding import ListenerPlan, Listeners, free_port
from chaoskit.proxy.budget import DEFAULT_BODY_BUDGET
from chaoskit.proxy.budget_guard import BodyBudgetGuard
from chaoskit.proxy.config_layers import ConfigLayers, log_duplicates
from chaoskit.proxy.core import ChaosCore, default_addons
from chaoskit.proxy.limits import DEFAULT_REQUEST_HEADERS_TIMEOUT, DownstreamLimits
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.runtime import ProxyRuntime, regular_mode, reverse_mode
from chaoskit.proxy.state_dir import create_ca, default_state_dir, prepare_state_dir
from chaoskit.proxy.tcp_connection import TcpTarget
from chaoskit.proxy.tcp_listeners import TcpListeners, check_target, tcp_targets
from chaoskit.proxy.tcp_session import TcpProxy
from chaoskit.proxy.websocket_handoff import HandoffClient
from chaoskit.records import Record, RecordLog
from chaoskit.rng import Seeds, new_seed
from chaoskit.sources import to_results, validated
from chaoskit.stats import Stats

CA_FILE = "mitmproxy-ca-cert.pem"
logger = logging.getLogger("chaoskit")


class ExposedListenerWarning(UserWarning):
    """A listener binds a non-loopback address: anyone who can reach it can use the proxy."""


class Proxy(ConfigLayers):
    """An in-process chaoskit proxy; use it as a context manager."""

    def __init__(
        self,
        *config: Any,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_port: int | None = 0,
        admin_host: str = "127.0.0.1",
        gateway_ports: dict[int, int] | None = None,
        gateway_port_offset: int = 0,
        workload_ports: dict[str, int] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        record_capacity: int = 10_000,
        web_port: int | None = None,
        max_connections: int | None = None,
        request_headers_timeout: float = DEFAULT_REQUEST_HEADERS_TIMEOUT,
        body_budget: int = DEFAULT_BODY_BUDGET,
        tcp_ports: Mapping[str, int] | None = None,
    ) -> None:
        """``config``: paths, YAML text, dicts or resources (see :mod:`chaoskit.sources`).

        ``gateway_ports`` maps a Gateway's port in the YAML to the port to bind (0 = any free
        port), so tests can run Gateways without fixed ports; unmapped ports bind as written,
        plus ``gateway_port_offset`` (``80`` with offset 18000 binds 18080), also for Gateways a
        later reload adds. ``workload_ports`` gives named workloads (WorkloadEntries or
        Deployments) a forward-proxy listener each (0 = any free port): every request on it
        comes from that workload, with no name in the proxy URL (``workload_url``).

        ``max_connections``: client connections open at once, past which new ones are closed
        (``None``: derived from the process's open-files limit, which an in-process proxy
        shares with its host). ``request_headers_timeout``: seconds a client has to send a
        request head (``0``: no limit). See :mod:`chaoskit.proxy.limits`. ``body_budget``:
        bytes of request and response bodies held at once by all requests together; past it a
        request is answered 503 ``OM`` (``0``: no global budget; :mod:`chaoskit.proxy.budget`).

        ``tcp_ports`` maps a service's TCP port, ``"redis:6379"`` (or ``"productpage@redis:6379"``
        for a named caller), to the local port of its TCP listener (0 = any free port; see
        :meth:`tcp_address` and :mod:`chaoskit.proxy.tcp_listeners`).
        """
        self._base: list[LoadResult] = to_results(config) if config else []
        #: resources applied over the admin API, layered over the base (kept across reloads)
        self.layer = RuntimeLayer()
        #: held by every configuration change (``apply``, a file reload, an admin change), so
        #: two changes made at once cannot build on the same old configuration and the later
        #: swap lose the earlier one's change (re-entrant: an admin change calls ``set_layer``)
        self.config_lock = threading.RLock()
        validation = validated(base=self._base)
        self.seed = seed if seed is not None else new_seed()
        self.records_log = RecordLog(record_capacity)
        self.stats_counters = Stats()
        self.pipeline = Pipeline(
            Seeds(self.seed), HandoffClient(), records=self.records_log, stats=self.stats_counters
        )
        self.pipeline.set_mesh(validation.mesh)
        #: the lean Master shows no flows; only the web UI needs them annotated
        self.core = ChaosCore(self.pipeline, annotate=web_port is not None)
        self.limits = DownstreamLimits(
            self.stats_counters, max_connections=max_connections,
            request_headers_timeout=request_headers_timeout,
            is_admin=lambda client: client.proxy_mode.full_spec == self._admin_spec,
        )  # fmt: skip
        self.budget_guard = BodyBudgetGuard(self.core, body_budget)
        self.host = host
        self._port = port
        if admin_port is not None and not is_loopback(admin_host):
            raise ProxyError(f"the admin listener must stay on loopback, not {admin_host}")
        self.admin_host = admin_host
        self._admin_spec = (
            reverse_mode(admin_host, admin_port or free_port(admin_host))
            if admin_port is not None
            else None
        )
        self._plan = ListenerPlan(
            host, port, gateway_ports=gateway_ports, gateway_port_offset=gateway_port_offset,
            workload_ports=workload_ports, admin_spec=self._admin_spec,
        )  # fmt: skip
        self._plan.check_workloads(validation.mesh)
        self.tcp = TcpProxy(self.pipeline, self.core.on_record)
        self.tcp_listeners = TcpListeners(self.tcp, host)
        self._tcp_ports = tcp_targets(tcp_ports or {}, validation.mesh)
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.runtime: ProxyRuntime | None = None
        #: mitmweb's UI port (``None``: no UI; the lean Master is faster).
        if web_port is not None and not webui.web_ui_is_safe():
            raise ProxyError(f"--web refused: {webui.refusal()}")
        self.web_port = web_port
        self.validation: Validation = validation

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> Proxy:
        if not is_loopback(self.host):
            warnings.warn(
                f"chaoskit proxy listening on {self.host}: anyone who can reach this address can "
                "use the proxy, its Gateway listeners and its CA-signed interception",
                ExposedListenerWarning,
                stacklevel=2,
            )
        log_duplicates(self._base)
        prepare_state_dir(self.state_dir)
        create_ca(self.state_dir)
        admin = None
        if self._admin_spec is not None:
            admin_spec = self._admin_spec
            admin = ChaosAdmin(
                self.core,
                lambda f: f.client_conn.proxy_mode.full_spec == admin_spec,
                config=AdminConfigApi(self),
            )
        addons = default_addons(
            self.core, limits=self.limits, budget=self.budget_guard, admin=admin
        )
        if self.web_port is not None:  # what mitmweb shows: no admin flows, the real address
            shows = webui.WebView(
                self._plan.main, admin_spec=self._admin_spec, listeners=self.core.listeners,
                mesh=lambda: self.pipeline.snapshot.mesh, tcp=self.tcp_listeners.bound,
            )  # fmt: skip
            addons.append(shows)
        listeners = self._plan.listeners(self.pipeline.snapshot.mesh)
        self._plan.check_free(listeners.modes, listeners)
        self.runtime = ProxyRuntime(
            addons, listeners.modes, confdir=str(self.state_dir), web_port=self.web_port
        )
        self.runtime.start(timeout)
        self._map_listeners(listeners)
        for target, port in self._tcp_ports.items():
            try:
                self.runtime.run_coro(self.tcp_listeners.open(target, port))
            except OSError as e:
                self.stop()
                raise ProxyError(
                    f"cannot listen on {self.host}:{port} for TCP service {target}: {e.strerror}"
                ) from None
        return self

    def _map_listeners(self, listeners: Listeners) -> None:
        bound = self._require().bound
        self.core.gateway_ports = {
            bound[spec][1]: port for spec, port in listeners.gateways.items() if spec in bound
        }
        self.core.workload_ports = {
            bound[spec][1]: name for spec, name in listeners.workloads.items() if spec in bound
        }

    def stop(self) -> None:
        if self.runtime is not None:
            with contextlib.suppress(Exception):  # stopping anyway: the loop may be gone
                self.runtime.run_coro(self.tcp_listeners.close())
            self.runtime.stop()
            self.runtime = None

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    def _require(self) -> ProxyRuntime:
        if self.runtime is None:
            raise RuntimeError(
                "the proxy is not running; use 'with Proxy(...) as proxy:' or .start()"
            )
        return self.runtime

    @property
    def port(self) -> int:
        return self._require().bound[regular_mode(self.host, self._port)][1]

    @property
    def url(self) -> str:
        """The forward-proxy URL for ``HTTP_PROXY`` / ``proxies=``."""
        return f"http://{self.host}:{self.port}"

    @property
    def web_url(self) -> str | None:
        """mitmweb's UI, with the token it needs (``None`` without ``web_port``)."""
        if self.web_port is None or self.runtime is None or self.runtime.master is None:
            return None
        return webui.web_url(self.runtime.master) or f"http://127.0.0.1:{self.web_port}/"

    @property
    def admin_url(self) -> str:
        if self._admin_spec is None:
            raise RuntimeError("this proxy was started without an admin listener")
        return f"http://{self.admin_host}:{self._require().bound[self._admin_spec][1]}"

    def url_for(self, workload: str) -> str:
        """The proxy URL for a named caller (a WorkloadEntry), for ``sourceLabels`` and Sidecars.

        It carries a placeholder password because Python's requests only sends
        ``Proxy-Authorization`` for plain-HTTP requests when the URL has both a user and a
        password; curl and HTTPS tunnels also accept the plain ``http://name@host:port`` form.
        """
        return f"http://{workload}:chaoskit@{self.host}:{self.port}"

    def workload_url(self, workload: str) -> str:
        """The proxy URL of ``workload``'s own listener (``workload_ports``)."""
        for bound, name in self.core.workload_ports.items():
            if name == workload:
                return f"http://{self.host}:{bound}"
        raise KeyError(f"no listener for workload {workload!r} (see workload_ports)")

    def gateway_url(self, config_port: int) -> str:
        """Where the Gateway server declared on ``config_port`` listens."""
        for bound, port in self.core.gateway_ports.items():
            if port == config_port:
                return f"http://{self.host}:{bound}"
        raise KeyError(f"no Gateway HTTP server on port {config_port}")

    def tcp_address(self, host: str, port: int, workload: str | None = None) -> tuple[str, int]:
        """Where a client connects to reach the TCP service ``host:port`` (as ``workload``, if
        given): the listener given in ``tcp_ports``, or one opened now on a free port.
        :class:`~chaoskit.errors.ProxyError` when the service port is not a TCP port of the
        configuration."""
        target = TcpTarget(host.lower(), port, workload or "")
        bound = self.tcp_listeners.bound.get(target)
        if bound is not None:
            return bound
        runtime = self._require()
        problem = check_target(self.pipeline.snapshot.mesh, target)
        if problem is not None:
            raise ProxyError(f"TCP listener {target}: {problem}")
        return runtime.run_coro(self.tcp_listeners.open(target, 0))

    @property
    def ca_path(self) -> Path:
        """mitmproxy's CA certificate: trust it to let the proxy see HTTPS to mesh hosts."""
        return self.state_dir / CA_FILE

    # -- configuration, records, stats ---------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Forget records, counters and cluster state; restart every seeded stream (from
        ``seed`` if given, so each test of a suite can have its own)."""

        def do() -> None:
            self.records_log.clear()
            self.stats_counters.reset()
            if seed is not None:
                self.seed = seed
                self.pipeline.set_seed(seed)
            self.pipeline.clusters.reset_state()
            self.pipeline.seeds.reset()
            self.pipeline.restart_faults()

        if self.runtime is not None:
            self.runtime.call(do)
        else:
            do()

    @property
    def in_flight(self) -> int:
        """Requests the proxy is still working on (including ones whose client gave up), and
        WebSockets still open (their record is written when they end)."""
        sockets = self.core.websockets.sockets if self.core.websockets is not None else ()
        return len(self.core.in_flight) + len(sockets)

    @property
    def records(self) -> list[Record]:
        return self.records_log.snapshot()

    @property
    def stats(self) -> dict[str, float]:
        return self.stats_counters.snapshot()
