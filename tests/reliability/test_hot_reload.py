"""Configuration swapped continuously while traffic flows: no request is lost or answered twice.

In-process, ``Proxy.apply`` runs in a loop from another thread; under ``chaoskit proxy`` the
file watcher picks up edits made the way editors make them (truncate, then write), including
a half-written file and an invalid one: both keep the last good configuration and say why.
"""

from __future__ import annotations

import concurrent.futures
import textwrap
import threading
import uuid
from collections import Counter
from pathlib import Path

from chaoskit.testing.upstream import free_port
from tests.reliability.conftest import jsonl, service, session, wait_for
from tests.soak.soak import ProxyProcess

GATEWAY_PORT = free_port()


def reviews_to(subset: str, extra: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: reviews}}
        spec:
          hosts: [reviews]
          http:
          - route: [{{destination: {{host: reviews, subset: {subset}}}}}]
        """) + textwrap.indent(textwrap.dedent(extra), "    ")


def drive(
    url: str, stop: threading.Event, workers: int = 6, out: list | None = None
) -> list[tuple[str, int, str]]:
    """Requests until ``stop``, appended to ``out`` as they finish: (request id, status,
    upstream that answered)."""
    out = [] if out is None else out
    lock = threading.Lock()

    def worker() -> None:
        with session(url) as s:
            while not stop.is_set():
                rid = str(uuid.uuid4())
                r = s.get("http://reviews:9080/r", headers={"x-request-id": rid}, timeout=30)
                with lock:
                    out.append((rid, r.status_code, r.json().get("upstream", "")))

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(worker) for _ in range(workers)]:
            f.result()  # a request that failed (no answer) fails the test here
    return out


CONFIGS = [
    [reviews_to("v1")],
    [reviews_to("v2", "retries: {attempts: 3, retryOn: 5xx}\ntimeout: 5s\n")],
    [
        reviews_to("v1", "retries: {attempts: 3, retryOn: 5xx}\n"),
        textwrap.dedent("""\
            apiVersion: chaoskit.dev/v1alpha1
            kind: UpstreamFault
            metadata: {name: flaky}
            spec: {host: reviews, abort: {httpStatus: 503}, sequence: [abort, pass]}
            """),
    ],
    [
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: reviews}
            spec:
              hosts: [reviews]
              http:
              - route:
                - {destination: {host: reviews, subset: v1}, weight: 50}
                - {destination: {host: reviews, subset: v2}, weight: 50}
            """),
        textwrap.dedent("""\
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: reviews}
            spec:
              host: reviews
              trafficPolicy:
                connectionPool: {tcp: {maxConnections: 100}}
                outlierDetection: {consecutive5xxErrors: 50, interval: 1s, baseEjectionTime: 1s}
              subsets:
              - {name: v1, labels: {version: v1}}
              - {name: v2, labels: {version: v2}}
            """),
    ],
    [  # a Gateway listener opens (and closes with the next config) while traffic flows
        reviews_to("v2"),
        textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {{name: gw}}
            spec:
              selector: {{istio: ingressgateway}}
              servers: [{{port: {{number: {GATEWAY_PORT}, name: http, protocol: HTTP}}, hosts: ["*"]}}]
            """),
    ],
]


def test_apply_from_another_thread_under_load(mesh):
    stop = threading.Event()
    applied = Counter()
    errors: list[BaseException] = []

    def swapper() -> None:
        i = 0
        try:
            while not stop.is_set():
                config = CONFIGS[i % len(CONFIGS)]
                mesh.apply(*config)
                applied[i % len(CONFIGS)] += 1
                i += 1
        except BaseException as e:  # surfaced below
            errors.append(e)
            stop.set()

    thread = threading.Thread(target=swapper)
    thread.start()
    timer = threading.Timer(4.0, stop.set)
    timer.start()
    try:
        results = drive(mesh.url, stop)
    finally:
        stop.set()
        timer.cancel()
        thread.join(30)
    assert not errors, errors
    assert sum(applied.values()) >= 2 * len(CONFIGS)  # it really was continuous
    assert len(results) > 100
    assert {status for _, status, _ in results} == {200}, Counter(s for _, s, _ in results)
    # every request has exactly one record, and it names the upstream that answered
    assert wait_for(lambda: len(mesh.records) >= len(results))
    records = Counter(r.request_id for r in mesh.records)
    assert all(records[rid] == 1 for rid, _, _ in results)
    assert len(records) == len(results)
    assert mesh.in_flight == 0


def test_file_edits_under_the_cli_watcher_lose_nothing(upstreams, bad, dead_port, tmp_path):
    from tests.reliability.conftest import base_mesh

    (tmp_path / "mesh.yaml").write_text(base_mesh(upstreams, bad, dead_port))
    over = tmp_path / "over.yaml"
    over.write_text(reviews_to("v1"))
    log = tmp_path / "access.jsonl"
    proxy = ProxyProcess([tmp_path / "mesh.yaml", over], tmp_path / "state", access_log=log)
    with proxy:
        proxy.wait_ready()
        stop = threading.Event()
        results: list[tuple[str, int, str]] = []
        traffic = threading.Thread(target=drive, args=(proxy.url, stop, 4, results))
        traffic.start()
        try:
            # edits the way editors make them: the file is truncated, then written
            for subset in ("v2", "v1", "v2"):
                with over.open("w") as f:
                    f.write(reviews_to(subset))
                proxy.stderr.wait_for("reloaded", timeout=30)

            # a half-written file: the watcher sees it, rejects it, v2 keeps serving
            text = reviews_to("v1")
            cut = text.index("subset: v1")
            with over.open("w") as f:
                f.write(text[:cut])
                f.flush()
                rejected = proxy.stderr.wait_for("change rejected", timeout=30)
                assert "keeping the last good configuration" in rejected
                reason = proxy.stderr.wait_for("over.yaml", timeout=5)
                assert "error" in reason
                mark = len(results)
                assert wait_for(lambda: len(results) - mark >= 10, 10)  # served meanwhile
                during = results[mark:]
                assert {who for _, _, who in during} == {"v2"}
                f.write(text[cut:])
            proxy.stderr.wait_for("reloaded", timeout=30)

            # an invalid but complete file: the same, with the validator's message (an undefined
            # subset would not do: Istio accepts it and answers 503 NC, and so does chaoskit)
            over.write_text(reviews_to("v2", "timeout: 0s\n"))
            proxy.stderr.wait_for("change rejected", timeout=30)
            why = proxy.stderr.wait_for("over.yaml", timeout=5)
            assert "spec.http[0].timeout" in why
            mark = len(results)
            assert wait_for(lambda: len(results) - mark >= 10, 10)
            assert {who for _, _, who in results[mark:]} == {"v1"}
            over.write_text(reviews_to("v2"))
            proxy.stderr.wait_for("reloaded", timeout=30)
            mark = len(results)
            assert wait_for(lambda: len(results) - mark >= 10, 10)  # traffic after the reload
        finally:
            stop.set()
            traffic.join(30)
        assert {status for _, status, _ in results} == {200}
        assert wait_for(lambda: len(jsonl(log)) >= len(results), 10)
    lines = Counter(rec["request_id"] for rec in jsonl(log))
    assert len(results) > 50
    assert all(lines[rid] == 1 for rid, _, _ in results)  # none lost, none twice
    assert set(lines) == {rid for rid, _, _ in results}


def test_a_deleted_file_is_a_reload_and_a_restored_one_too(upstreams, bad, dead_port, tmp_path):
    from tests.reliability.conftest import base_mesh

    (tmp_path / "mesh.yaml").write_text(base_mesh(upstreams, bad, dead_port))
    extra = tmp_path / "extra.yaml"
    extra.write_text(service("extra", upstreams["v2"].port))
    with ProxyProcess([tmp_path], tmp_path / "state") as proxy:
        proxy.wait_ready()
        with session(proxy.url) as s:
            assert s.get("http://extra:9080/", timeout=10).json()["upstream"] == "v2"
            extra.unlink()
            proxy.stderr.wait_for("reloaded", timeout=30)
            with session() as direct:  # the admin is never reachable through the proxy
                dump = direct.get(f"{proxy.admin_url}/config_dump", timeout=10).json()
            assert "extra" not in {r["metadata"]["name"] for r in dump["resources"]}
            Path(extra).write_text(service("extra", upstreams["v1"].port))
            proxy.stderr.wait_for("reloaded", timeout=30)
            assert s.get("http://extra:9080/", timeout=10).json()["upstream"] == "v1"
