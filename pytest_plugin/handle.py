"""``Chaos``: the handle behind the ``chaos`` fixture — per-test config, traffic and evidence.

A test's configuration is layered over the session's base config and is undone when the test
ends; records and counters start empty for every test, and every seeded decision restarts from
the test's own seed. Everything here is a thin layer over :class:`chaoskit.proxy.api.Proxy`.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from chaoskit.clock import SYSTEM_CLOCK
from chaoskit.config import Validation
from chaoskit.config.resource import Resource
from chaoskit.config.upstream_fault import UpstreamFault
from chaoskit.config.virtual_service import MESH, VirtualService
from chaoskit.config.yamlsource import Location
from chaoskit.errors import ConfigError

from . import assertions
from .evidence import (
    Counters,
    DeclaredFault,
    Records,
    declared_faults,
    grouped_listing,
    host_names,
    plural,
    stats_for_host,
)
from .hints import IssueHint, host_issue_hint, unknown_host_hint
from .keywords import FAULT_ALIASES, ROUTE_FAULT_ALIASES, yaml_keywords
from .markers import resolve_path
from .resources import (
    ISTIO_API,
    build_route_fault,
    build_upstream_fault,
    label_for,
    match_list,
    parse_rule_parts,
    with_fault,
)

if TYPE_CHECKING:
    from chaoskit.proxy.api import Proxy

R = TypeVar("R", bound=Resource)

#: How long evidence readers wait for requests still in flight (``chaos_settle_timeout``).
DEFAULT_SETTLE_TIMEOUT = 5.0


class ChaosConfigWarning(UserWarning):
    """A config a test applied is valid but probably not what was meant (a validation warning)."""


# -- the proxy, as the handle drives it ---------------------------------------------------------


def reseed(proxy: Proxy, seed: int) -> None:
    """Forget records, counters and cluster state, and restart every stream from ``seed``."""
    proxy.reset(seed)


def in_flight(proxy: Proxy) -> int:
    """Requests the proxy is still working on (their records are not written yet)."""
    return proxy.in_flight


def proxy_env(proxy: Proxy, workload: str | None = None) -> dict[str, str]:
    """Environment variables that send a subprocess's HTTP(S) through ``proxy``."""
    url = proxy.url_for(workload) if workload else proxy.url
    ca = str(proxy.ca_path)
    return {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "http_proxy": url,
        "https_proxy": url,
        "NO_PROXY": "",
        "no_proxy": "",
        "REQUESTS_CA_BUNDLE": ca,
        "SSL_CERT_FILE": ca,
        "CURL_CA_BUNDLE": ca,
    }


class Chaos:
    """What a test uses to apply faults, send traffic through the proxy and check the outcome.

    Made by the ``chaos`` fixture; see docs/pytest.md for a tutorial.
    """

    def __init__(
        self,
        proxy: Proxy,
        *,
        seed: int,
        session_seed: int | None = None,
        nodeid: str = "",
        search: Sequence[Path] = (),
        mark_sources: Sequence[Any] = (),
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
    ) -> None:
        #: The session's proxy (shared by every test of this pytest process).
        self.proxy = proxy
        #: The seed of this test's decisions (derived from the session seed, or the marker's).
        self.seed = seed
        self.session_seed = proxy.seed if session_seed is None else session_seed
        self.nodeid = nodeid
        self.settle_timeout = settle_timeout
        self._search = list(search)
        self._mark_sources = list(mark_sources)
        self._layers: list[Any] = []
        self._sessions: list[requests.Session] = []
        self._base_ids: set[int] = set()
        self._warned: set[str] = set()
        self._names = itertools.count(1)
        self._t0 = 0.0
        self._final: tuple[Records, dict[str, float], list[DeclaredFault]] | None = None

    # -- lifecycle (driven by the fixture) ------------------------------------------------------

    def begin(self) -> None:
        """Base config only, then the marker's config; fresh records, counters and streams."""
        base = self.proxy.apply()
        self._base_ids = {id(r) for r in base.resources}
        self._warned = {str(i) for i in base.issues if i.severity == "warning"}
        self._layers = []
        if self._mark_sources:
            self.apply(*self._mark_sources)
        self._restart()

    def reset(self) -> None:
        """Back to how the test started: undo ``apply``/``fault``/``route_fault`` calls (the
        marker's config stays), clear records and counters, and restart the seeded streams.

        Useful inside a Hypothesis ``@given`` test, where one test runs many examples.
        """
        self.settle()
        self.proxy.apply(*self._mark_sources)
        self._layers = list(self._mark_sources)
        self._restart()

    def _restart(self) -> None:
        reseed(self.proxy, self.seed)
        self._t0 = SYSTEM_CLOCK.wall()

    def end(self) -> None:
        """Keep this test's evidence, then put the proxy back to the base config."""
        self.settle()
        self._final = (self._records_now(), self._stats_now(), self.declared_faults)
        for s in self._sessions:
            s.close()
        self._sessions.clear()
        self.proxy.apply()
        reseed(self.proxy, self.session_seed)

    @property
    def ended(self) -> bool:
        return self._final is not None

    # -- configuration -----------------------------------------------------------------------------

    def apply(self, *sources: Any) -> Validation:
        """Layer ``sources`` (paths, YAML text, dicts, resources, lists of them) over the session's
        base config and this test's earlier ``apply`` calls; undone when the test ends.

        Raises :class:`chaoskit.errors.ConfigError` (and changes nothing) if the result is
        invalid; validation warnings become :class:`ChaosConfigWarning`.
        """
        __tracebackhide__ = True
        return self._apply(sources)

    def _apply(self, sources: Sequence[Any], hint: IssueHint | None = None) -> Validation:
        """``apply``, with ``hint`` rewriting the issues it reports (errors and warnings)."""
        __tracebackhide__ = True
        resolved = [_resolve(s, self._search) for s in sources]
        try:
            validation = self.proxy.apply(*self._layers, *resolved)
        except ConfigError as e:
            if hint is None:
                raise
            raise ConfigError([hint(i) for i in e.issues]) from None
        self._layers.extend(resolved)
        for issue in validation.issues:
            text = str(hint(issue) if hint is not None else issue)
            if issue.severity == "warning" and text not in self._warned:
                self._warned.add(text)
                warnings.warn(text, ChaosConfigWarning, stacklevel=_caller_level())
        return validation

    @yaml_keywords(FAULT_ALIASES)
    def fault(
        self,
        host: str,
        *,
        delay: str | float | Mapping[str, Any] | None = None,
        abort: int | str | Mapping[str, Any] | None = None,
        percent: float = 100,
        subset: str | None = None,
        first: int | None = None,
        nth: int | None = None,
        sequence: Sequence[str] | None = None,
        repeat: bool = False,
        reset: str | int | Mapping[str, Any] | None = None,
        hang: bool = False,
        slow_body: int | None = None,
        pause_body: Mapping[str, Any] | None = None,
        truncate_body: int | Mapping[str, Any] | None = None,
        corrupt_body: int | None = None,
        websocket: Mapping[str, Any] | None = None,
        window: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        endpoint_labels: Mapping[str, str] | None = None,
        match: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        name: str | None = None,
        namespace: str = "default",
    ) -> UpstreamFault:
        """Apply an ``UpstreamFault``: ``host``'s upstream misbehaves per attempt, below retries.

        ``delay``: ``"250ms"``, seconds, or a dict (``{"distribution": "lognormal", ...}``);
        ``abort``: an HTTP status, a gRPC status name or a dict (``{"httpStatus": 503,
        "headers": {"retry-after": "1"}}``); ``reset``: ``"connect"``, ``"headers"``, a byte
        count or a dict (``{"afterEvents": 2}``); ``pause_body``: a dict (``{"afterEvents": 1,
        "for": "2s"}``); ``truncate_body``: a byte count or a dict; ``first``/``nth``/
        ``sequence`` choose attempts deterministically, ``percent`` randomly (seeded). Returns
        the applied resource.

        There is one keyword per action of :data:`chaoskit.faults.actions.ACTIONS` (its
        ``attr``), which writes it (``Action.from_keyword``); a test keeps them in step.
        """
        __tracebackhide__ = True
        name = name or f"{label_for(host)}-fault-{next(self._names)}"
        resource = build_upstream_fault(
            host, name=name, namespace=namespace, delay=delay, abort=abort, reset=reset,
            hang=hang, slow_body=slow_body, pause_body=pause_body, truncate_body=truncate_body,
            corrupt_body=corrupt_body, websocket=websocket, percent=percent, first=first,
            nth=nth, sequence=sequence, repeat=repeat, window=window, subset=subset,
            endpoint=endpoint, endpoint_labels=endpoint_labels, match=match,
        )  # fmt: skip
        hint = unknown_host_hint(self.proxy.validation.mesh, host, namespace)
        ref = f"{UpstreamFault.KIND}/{namespace}/{name}"
        validation = self._apply([resource], host_issue_hint(ref, hint))
        return _find(validation, UpstreamFault, namespace, name)

    @yaml_keywords(ROUTE_FAULT_ALIASES)
    def route_fault(
        self,
        host: str,
        *,
        delay: str | float | None = None,
        abort: int | str | Mapping[str, Any] | None = None,
        percent: float = 100,
        match: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> VirtualService:
        """Apply an Istio VirtualService fault (before the router: never retried) for ``host``.

        If the current config has a VirtualService for ``host``, a copy of it with the fault on
        each forwarding rule replaces it (with ``match``, a faulted copy narrowed by ``match`` is
        put in front of each rule instead). Otherwise a VirtualService routing to ``host`` with
        the fault is created. Returns the applied VirtualService.
        """
        __tracebackhide__ = True
        fault = build_route_fault(delay, abort, percent)
        matches = match_list(match)
        existing = self._virtual_service_for(host)
        if existing is None:
            name = f"{label_for(host)}-route-fault"
            dest = [{"destination": {"host": host}}]
            rules: list[dict[str, Any]] = [{"fault": fault, "route": dest}]
            if matches:
                rules = [{"match": matches, "fault": fault, "route": dest}, {"route": dest}]
            hint = unknown_host_hint(self.proxy.validation.mesh, host)
            validation = self._apply(
                [
                    {
                        "apiVersion": ISTIO_API,
                        "kind": "VirtualService",
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {"hosts": [host], "http": rules},
                    }
                ],
                host_issue_hint(f"{VirtualService.KIND}/default/{name}", hint),
            )
            return _find(validation, VirtualService, "default", name)
        parsed_fault, parsed_matches = parse_rule_parts(host, fault, matches)
        copy = dataclasses.replace(
            existing,
            http=with_fault(existing, parsed_fault, parsed_matches),
            location=Location(f"<chaos.route_fault {next(self._names)}>", 1),
        )
        validation = self.apply(copy)
        return _find(validation, VirtualService, existing.namespace, existing.name)

    def _virtual_service_for(self, host: str) -> VirtualService | None:
        names = host_names(host)
        for vs in self.proxy.validation.mesh.virtual_services:
            if MESH in vs.gateways and names & set(vs.fqdn_hosts):
                return vs
        return None

    # -- traffic -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The proxy URL (``http://127.0.0.1:PORT``) for ``proxies=`` or ``HTTP_PROXY``."""
        return self.proxy.url

    def proxy_url_as(self, workload: str) -> str:
        """The proxy URL through which a client calls as ``workload`` (a WorkloadEntry): the
        proxy's address, with the caller's name in it (``http://productpage:…@127.0.0.1:PORT``).
        """
        return self.proxy.url_for(workload)

    def url_for(self, workload: str) -> str:
        """Deprecated: :meth:`proxy_url_as`. pytest-httpserver's ``url_for(path)`` is a URL on
        the test server; this one never was, so it was renamed."""
        warnings.warn(
            "chaos.url_for(workload) is deprecated: use chaos.proxy_url_as(workload), the proxy "
            "URL that names the caller (url_for reads like pytest-httpserver's URL on a server)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.proxy_url_as(workload)

    def gateway_url(self, port: int) -> str:
        """Where the Gateway server declared on ``port`` listens."""
        return self.proxy.gateway_url(port)

    def tcp_address(self, host: str, port: int, workload: str | None = None) -> tuple[str, int]:
        """``(host, port)`` a database or cache client connects to, to reach the TCP service
        ``host:port`` through the proxy (as ``workload``, if given): tcp routes, connection
        limits and TCP UpstreamFaults apply. The listener is opened on first use and kept for
        the session; a connection's record is written when it closes."""
        return self.proxy.tcp_address(host, port, workload)

    @property
    def ca_path(self) -> Path:
        return self.proxy.ca_path

    def session(self, workload: str | None = None) -> requests.Session:
        """A ``requests.Session`` that goes through the proxy (ignoring proxy variables of the
        environment) and trusts the proxy's CA; closed when the test ends."""
        url = self.proxy.url_for(workload) if workload else self.proxy.url
        s = requests.Session()
        s.trust_env = False
        s.proxies = {"http": url, "https": url}
        s.verify = str(self.proxy.ca_path)
        self._sessions.append(s)
        return s

    @property
    def env(self) -> dict[str, str]:
        """Proxy and CA variables for a subprocess under test:
        ``subprocess.run(cmd, env={**os.environ, **chaos.env})``."""
        return proxy_env(self.proxy)

    def env_for(self, workload: str) -> dict[str, str]:
        """:attr:`env` for a subprocess that names itself ``workload``."""
        return proxy_env(self.proxy, workload)

    # -- evidence ----------------------------------------------------------------------------------

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the proxy has finished every request (so their records exist); ``False``
        if some are still running after ``timeout`` seconds (default: ``settle_timeout``)."""
        if self._final is not None:
            return True
        limit = self.settle_timeout if timeout is None else timeout
        deadline = SYSTEM_CLOCK.monotonic() + limit
        pause = threading.Event()
        while in_flight(self.proxy):
            if SYSTEM_CLOCK.monotonic() >= deadline:
                return False
            pause.wait(0.005)
        return True

    def _records_now(self) -> Records:
        return Records(r for r in self.proxy.records if r.start >= self._t0)

    def _stats_now(self) -> dict[str, float]:
        return self.proxy.stats

    @property
    def records(self) -> Records:
        """What this test's requests did, oldest first (waits for requests in flight first)."""
        if self._final is not None:
            return Records(self._final[0])
        self.settle()
        return self._records_now()

    def stats(self, host: str | None = None) -> Counters:
        """Envoy-style counters of this test; with ``host``, that host's cluster counters summed
        over its clusters and without the ``cluster.<name>.`` prefix (missing ones read 0).
        ``host`` may also be one cluster's name (``outbound|80|v1|payments.default.svc…``)."""
        if self._final is not None:
            snapshot = self._final[1]
        else:
            self.settle()
            snapshot = self._stats_now()
        if host is None:
            return Counters(snapshot)
        if "|" in host:
            prefix = f"cluster.{host}."
            return Counters(
                {k[len(prefix) :]: v for k, v in snapshot.items() if k.startswith(prefix)}
            )
        return stats_for_host(snapshot, host_names(host))

    @property
    def declared_faults(self) -> list[DeclaredFault]:
        """Faults this test put in place (marker, ``apply``, ``fault``, ``route_fault``)."""
        if self._final is not None:
            return list(self._final[2])
        added = [r for r in self.proxy.validation.resources if id(r) not in self._base_ids]
        return declared_faults(added)

    # -- assertions (chaoskit_pytest.assertions) --------------------------------------------------

    def assert_fired(self, fault: Resource | Mapping[str, Any] | str | None = None) -> None:
        """``fault`` (a resource, its dict, its name or ref) acted at least once; with no
        argument, every fault this test declared did."""
        __tracebackhide__ = True
        assertions.assert_fired(self, fault)

    def assert_retried(self, host: str, times: int | None = None) -> None:
        """At least one request to ``host`` was retried exactly ``times`` times (``None``: at
        least once)."""
        __tracebackhide__ = True
        assertions.assert_retried(self, host, times)

    def assert_not_retried(self, host: str) -> None:
        __tracebackhide__ = True
        assertions.assert_not_retried(self, host)

    def assert_timed_out(self, host: str) -> None:
        __tracebackhide__ = True
        assertions.assert_timed_out(self, host)

    def assert_ejected(self, host: str) -> None:
        __tracebackhide__ = True
        assertions.assert_ejected(self, host)

    def assert_overflowed(self, host: str) -> None:
        __tracebackhide__ = True
        assertions.assert_overflowed(self, host)

    def assert_no_requests_bypassed(self) -> None:
        __tracebackhide__ = True
        assertions.assert_no_requests_bypassed(self)

    def assert_p95(self, host: str, below: float) -> None:
        __tracebackhide__ = True
        assertions.assert_p95(self, host, below)

    def assert_error_rate(self, host: str, below: float) -> None:
        __tracebackhide__ = True
        assertions.assert_error_rate(self, host, below)

    # -- reporting ---------------------------------------------------------------------------------

    def describe(self) -> str:
        """This test's seed, declared faults and requests, as the failure report shows them."""
        records = self.records
        lines = [
            f"seed {self.seed} (session seed {self.session_seed}: "
            f"replay with --chaos-seed={self.session_seed})"
        ]
        declared = self.declared_faults
        if declared:
            lines.append("declared faults:")
            for d in declared:
                hits = sum(1 for r in records if d.fired_in(r))
                lines.append(f"  {d.describe()}: fired in {plural(hits, 'request')}")
        if records:
            lines.append(f"{plural(len(records), 'request')} through the proxy:")
            lines += grouped_listing(records)
        else:
            lines.append("no requests went through the proxy")
        if not self.settle(0):
            lines.append(f"{in_flight(self.proxy)} requests were still in flight")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Seed, declared faults, records and counters as plain data (``--chaos-report``)."""
        return {
            "nodeid": self.nodeid,
            "seed": self.seed,
            "session_seed": self.session_seed,
            "declared_faults": [
                {"ref": d.ref, "kind": d.kind, "host": d.host, "actions": list(d.actions)}
                for d in self.declared_faults
            ],
            "records": [r.to_dict() for r in self.records],
            "stats": dict(self.stats()),
        }

    def __repr__(self) -> str:
        return f"<Chaos {self.nodeid or '?'} seed={self.seed} proxy={self.proxy.url}>"


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside this package."""
    here = str(Path(__file__).parent)
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(here):
        frame = frame.f_back
        level += 1
    return level


def _resolve(source: Any, search: Sequence[Path]) -> Any:
    if isinstance(source, (list, tuple)):
        return [_resolve(s, search) for s in source]
    return resolve_path(source, search)


def _find(validation: Validation, kind: type[R], namespace: str, name: str) -> R:
    for r in validation.resources:
        if isinstance(r, kind) and r.namespace == namespace and r.name == name:
            return r
    raise LookupError(f"{kind.__name__}/{namespace}/{name} is not in the applied config")
