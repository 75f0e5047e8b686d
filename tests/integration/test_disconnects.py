"""A client that vanishes mid-request frees everything at once (Envoy resets upstream work)."""

from __future__ import annotations

import socket
import textwrap
import threading
import time

import requests

from chaoskit.proxy.enforcer import UNNAMED_CALLER
from tests.builders import ratings_vs


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        threading.Event().wait(0.01)
    return predicate()


def send_and_vanish(mesh, path: str, host: str = "ratings:9080", after: float = 0.3) -> None:
    with socket.create_connection(("127.0.0.1", mesh.port), timeout=5) as s:
        s.sendall(f"GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        threading.Event().wait(after)


def test_disconnect_during_an_injected_delay(mesh, upstreams):
    mesh.apply(ratings_vs("fault: {delay: {fixedDelay: 10s, percentage: {value: 100}}}\n"))
    t0 = time.monotonic()
    send_and_vanish(mesh, "/slow")
    assert wait_for(lambda: len(mesh.records) == 1)
    record = mesh.records[0]
    assert record.flags == ("DC", "DI") and record.status == 0  # Envoy prints flags in its order
    assert time.monotonic() - t0 < 2.0  # not 10 s
    threading.Event().wait(0.2)
    assert upstreams["ratings"].requests == []  # the request never went upstream


def test_disconnect_while_an_upstream_attempt_hangs_releases_the_breaker(mesh):
    mesh.apply(
        textwrap.dedent("""\
            apiVersion: chaoskit.dev/v1alpha1
            kind: UpstreamFault
            metadata: {name: hang-once}
            spec: {host: ratings, hang: {}, firstN: 1}
            ---
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: ratings}
            spec:
              host: ratings
              trafficPolicy:
                connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}
            """),
    )
    send_and_vanish(mesh, "/hang")
    assert wait_for(lambda: len(mesh.records) == 1)
    assert mesh.records[0].flags == ("DC",)
    # the only connection slot is free again: a new request goes straight through
    r = requests.get("http://ratings:9080/", proxies={"http": mesh.url}, timeout=5)
    assert r.status_code == 200


def test_a_client_that_gives_up_early_is_told_its_retries_were_wasted(mesh):
    mesh.apply(ratings_vs("timeout: 3s\nretries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx}\n"))
    send_and_vanish(mesh, "/delay/5000", after=0.5)
    assert wait_for(lambda: len(mesh.records) == 1)
    # (the other note: this mesh declares workloads and the caller named none)
    (note,) = [n for n in mesh.records[0].notes if n != UNNAMED_CALLER]
    assert note.startswith("client gave up after 0.")
    assert note.endswith(
        "the route allows 3 × 1s attempts within a 3s timeout — retries here are wasted"
    )
