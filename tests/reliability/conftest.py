"""Real sockets on 127.0.0.1 for the reliability suite: well-behaved upstreams, a misbehaving
one, a port nobody listens on, and one in-process chaoskit proxy per module (mitmproxy allows
one per process, so modules never overlap and tests reset it instead of starting another).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from chaoskit.proxy.api import Proxy
from chaoskit.testing import Upstream
from chaoskit.testing.upstream import free_port
from tests.reliability.servers import Misbehaving

pytestmark = pytest.mark.integration


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(0.01)
    return bool(predicate())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


def clusters(proxy: Proxy) -> dict[str, dict]:
    """``/clusters?format=json`` by cluster name (first entry per name)."""
    with session() as s:
        data = s.get(f"{proxy.admin_url}/clusters?format=json", timeout=5).json()
    out: dict[str, dict] = {}
    for c in data["clusters"]:
        out.setdefault(c["name"], c)
    return out


def all_released(proxy: Proxy) -> bool:
    """No circuit-breaker slot and no endpoint request held anywhere."""
    for c in clusters(proxy).values():
        cb = c["circuit_breakers"]
        if cb["rq_active"] or cb["rq_pending"] or cb["cx_active"] or cb["rq_retry_active"]:
            return False
        if any(h["active_requests"] for h in c["hosts"]):
            return False
    return True


@contextlib.contextmanager
def buffered(proxy: Proxy) -> Iterator[None]:
    """Response bodies buffered whole, as where mitmproxy is not patched to stream them (a
    mitmproxy version chaoskit does not know): the path every body took before bodies
    streamed, and the one the body limits guard."""
    services = proxy.pipeline.services
    runtime = proxy.runtime
    assert runtime is not None and services.streaming
    runtime.call(lambda: setattr(services, "streaming", False))
    try:
        yield
    finally:
        runtime.call(lambda: setattr(services, "streaming", True))


def session(proxy_url: str | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never let the environment's proxy settings decide
    if proxy_url:
        s.proxies = {"http": proxy_url}
    return s


def healthy(proxy: Proxy) -> bool:
    """One ordinary request through the proxy, on a new connection, still works."""
    with session(proxy.url) as s:
        r = s.get("http://ratings:9080/health", timeout=10)
    return r.status_code == 200 and r.json()["upstream"] == "ratings"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    ups = {name: Upstream(name).start() for name in ("v1", "v2", "ratings")}
    yield ups
    for up in ups.values():
        up.stop()


@pytest.fixture(scope="module")
def bad() -> Iterator[Misbehaving]:
    with Misbehaving() as server:
        yield server


@pytest.fixture(scope="module")
def dead_port() -> int:
    return free_port()


def service(name: str, *ports: int, labels: list[str] | None = None) -> str:
    endpoints = ", ".join(
        f"{{address: 127.0.0.1, ports: {{http: {p}}}"
        + (f", labels: {{version: {labels[i]}}}" if labels else "")
        + "}"
        for i, p in enumerate(ports)
    )
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {name}}}
        spec:
          hosts: [{name}]
          ports: [{{number: 9080, name: http, protocol: HTTP}}]
          resolution: STATIC
          endpoints: [{endpoints}]
        """)


def base_mesh(ups: dict[str, Upstream], bad: Misbehaving, dead_port: int) -> str:
    return "---\n".join(
        [
            service("ratings", ups["ratings"].port),
            service("reviews", ups["v1"].port, ups["v2"].port, labels=["v1", "v2"]),
            service("bad", bad.port),
            service("dead", dead_port),
            textwrap.dedent("""\
                apiVersion: networking.istio.io/v1
                kind: DestinationRule
                metadata: {name: reviews}
                spec:
                  host: reviews
                  subsets:
                  - {name: v1, labels: {version: v1}}
                  - {name: v2, labels: {version: v2}}
                """),
        ]
    )


@pytest.fixture(scope="module")
def proxy(upstreams, bad, dead_port, tmp_path_factory) -> Iterator[Proxy]:
    state = tmp_path_factory.mktemp("chaoskit-state")
    with Proxy(
        base_mesh(upstreams, bad, dead_port), seed=11, state_dir=state, record_capacity=50_000
    ) as p:
        yield p


@pytest.fixture
def mesh(proxy, upstreams, bad) -> Iterator[Proxy]:
    """The module's proxy, reset to the base mesh with fresh records for each test."""
    proxy.apply()
    proxy.reset()
    for up in upstreams.values():
        up.clear()
    bad.clear()
    yield proxy


@pytest.fixture
def client(mesh) -> Iterator[requests.Session]:
    with session(mesh.url) as s:
        yield s


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
