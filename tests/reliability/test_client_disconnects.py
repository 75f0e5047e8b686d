"""A client that vanishes cancels all of its request's work, wherever that work is, and every
circuit-breaker slot it held is released (checked on the admin's ``/clusters?format=json``).

``tests/integration/test_disconnects.py`` covers the injected delay and a hanging attempt; here
the request is in a real upstream attempt, in retry back-off, or queued for a connection.
"""

from __future__ import annotations

import socket
import textwrap
import threading
import time

from tests.builders import ratings_vs
from tests.reliability.conftest import all_released, clusters, healthy, wait_for

RATINGS = "outbound|9080||ratings.default.svc.cluster.local"


def send_and_vanish(mesh, path: str, host: str = "ratings:9080", after: float = 0.3) -> None:
    with socket.create_connection(("127.0.0.1", mesh.port), timeout=5) as s:
        s.sendall(f"GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        threading.Event().wait(after)


def ratings(extra_vs: str = "", dr: str = "", fault: str = "") -> list[str]:
    docs = [ratings_vs(extra_vs)]
    if dr:
        docs.append(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            "metadata: {name: ratings}\nspec:\n  host: ratings\n"
            + textwrap.indent(textwrap.dedent(dr), "  ")
        )
    if fault:
        docs.append(
            "apiVersion: chaoskit.dev/v1alpha1\nkind: UpstreamFault\n"
            "metadata: {name: f}\nspec:\n" + textwrap.indent(textwrap.dedent(fault), "  ")
        )
    return docs


def upstream_requests(mesh) -> float:
    return mesh.stats.get(f"cluster.{RATINGS}.upstream_rq_total", 0)


def test_disconnect_during_an_upstream_attempt(mesh, upstreams):
    mesh.apply(*ratings(dr="trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}\n"))
    seen: dict = {}

    def watch() -> None:  # what /clusters says while the attempt is in flight
        if wait_for(lambda: upstreams["ratings"].requests, 3):
            seen.update(clusters(mesh)[RATINGS])

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0 = time.monotonic()
    send_and_vanish(mesh, "/delay/5000", after=0.8)
    watcher.join(5)
    assert seen["circuit_breakers"]["rq_active"] == 1  # the slot really was taken
    assert seen["hosts"][0]["active_requests"] == 1
    assert wait_for(lambda: len(mesh.records) == 1)
    record = mesh.records[0]
    assert record.status == 0 and "DC" in record.flags
    (attempt,) = record.attempts  # cancelled before it completed, and still recorded
    assert (attempt.outcome, attempt.status) == ("client-gone", None)
    assert time.monotonic() - t0 < 4  # not the upstream's 5 s
    assert wait_for(lambda: mesh.in_flight == 0)
    assert wait_for(lambda: all_released(mesh))
    assert healthy(mesh)  # the only connection slot is free again


def test_disconnect_during_retry_backoff(mesh, upstreams):
    # every attempt is answered 503 at once; back-off between tries is long (base 10 s)
    mesh.apply(
        *ratings(
            "retries: {attempts: 5, retryOn: 5xx, backoff: 10s}\ntimeout: 60s\n",
            dr="trafficPolicy: {connectionPool: {http: {maxRetries: 1}}}\n",
            fault="host: ratings\nabort: {httpStatus: 503}\n",
        )
    )
    t0 = time.monotonic()
    send_and_vanish(mesh, "/backoff", after=0.5)
    assert wait_for(lambda: len(mesh.records) == 1)
    record = mesh.records[0]
    assert record.status == 0 and "DC" in record.flags
    assert 1 <= len(record.attempts) < 6
    assert time.monotonic() - t0 < 3
    tries = upstream_requests(mesh)
    threading.Event().wait(0.5)
    assert upstream_requests(mesh) == tries  # no attempt after the client left
    assert mesh.in_flight == 0
    assert all_released(mesh)  # rq_retry_active back to 0 too
    assert upstreams["ratings"].requests == []  # aborts were injected below the retry layer
    mesh.apply()
    assert healthy(mesh)


def test_disconnect_while_queued_for_a_connection(mesh, upstreams):
    # one connection, one pending slot: a slow request holds the connection, ours queues
    mesh.apply(
        *ratings(
            dr="trafficPolicy:\n  connectionPool: {tcp: {maxConnections: 1}, "
            "http: {http1MaxPendingRequests: 1}}\n"
        )
    )
    holder = threading.Thread(
        target=send_and_vanish, args=(mesh, "/delay/2000", "ratings:9080", 2.5)
    )
    holder.start()
    assert wait_for(lambda: upstreams["ratings"].requests)
    queued: dict = {}

    def watch() -> None:
        if wait_for(lambda: clusters(mesh)[RATINGS]["circuit_breakers"]["rq_pending"] == 1, 3):
            queued["yes"] = True

    watcher = threading.Thread(target=watch)
    watcher.start()
    send_and_vanish(mesh, "/queued", after=0.9)
    watcher.join(5)
    assert queued  # it really waited in the pending queue
    holder.join(5)
    assert wait_for(lambda: len(mesh.records) == 2)
    by_path = {r.path: r for r in mesh.records}
    assert by_path["/queued"].status == 0 and "DC" in by_path["/queued"].flags
    assert [r.path for r in upstreams["ratings"].requests] == ["/delay/2000"]  # never sent
    assert wait_for(lambda: all_released(mesh))
    assert healthy(mesh)


def test_many_clients_vanishing_at_once_leave_nothing_behind(mesh):
    mesh.apply(
        *ratings(
            "retries: {attempts: 2, retryOn: 5xx, backoff: 1s}\n",
            dr="trafficPolicy:\n  connectionPool: {tcp: {maxConnections: 2}, "
            "http: {http1MaxPendingRequests: 50}}\n",
        )
    )
    paths = ["/delay/3000"] * 20 + ["/status/503"] * 20
    threads = [threading.Thread(target=send_and_vanish, args=(mesh, p)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert wait_for(lambda: len(mesh.records) == len(paths), 10)
    assert wait_for(lambda: mesh.in_flight == 0)
    assert wait_for(lambda: all_released(mesh))
    assert healthy(mesh)
