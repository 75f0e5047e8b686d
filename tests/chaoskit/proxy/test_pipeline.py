"""The request path without mitmproxy or sockets: a scripted upstream, a fake clock and an
injected sleep (:mod:`chaoskit.testing`), so every await that matters (a fault delay, an
UpstreamFault delay, a back-off) is visible and every test runs in milliseconds.

Two things are pinned here (issue 12, "records that lie"):

- an attempt cut off by the end of its request (route timeout → ``504 UT``, client gone →
  ``0 DC``) is in the record, with its endpoint, faults, outcome and duration;
- a retry refused by ``attempts`` or by the ``maxRetries`` breaker is refused before any
  back-off, and only retries that are sent count as ``upstream_rq_retry``.
"""

from __future__ import annotations

import asyncio
import contextlib

from chaoskit.accesslog import format_json, format_text
from chaoskit.proxy import replies
from chaoskit.proxy.exchange import Exchange
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.upstream import UpstreamFailure
from chaoskit.records import Record
from chaoskit.rng import Seeds
from chaoskit.routing.request import RequestInfo
from chaoskit.sources import validated
from chaoskit.testing import FakeBody, FakeClock, FakeSleep, FakeUpstream, streamed
from tests.builders import fault, ratings_vs, service_entry

UPSTREAM = "127.0.0.1:9999"
CLUSTER = "outbound|80||ratings.default.svc.cluster.local"
#: Every wait in these tests is bounded by this (a test that hangs fails instead).
BOUND = 5.0


def make_pipeline(client: FakeUpstream, sleep: FakeSleep, clock: FakeClock, *docs: str) -> Pipeline:
    pipeline = Pipeline(Seeds(1), client, clock=clock, sleep=sleep)
    pipeline.set_mesh(validated(service_entry("ratings", 9999), *docs).mesh)
    return pipeline


def exchange(pipeline: Pipeline, path: str = "/") -> Exchange:
    request = RequestInfo("GET", "http", "ratings", path, port=80, headers={"host": "ratings"})
    return pipeline.new_exchange(request, [("host", "ratings")], b"", "mesh")


async def request(pipeline: Pipeline, path: str = "/") -> Record:
    ex = exchange(pipeline, path)
    reply = await asyncio.wait_for(pipeline.handle(ex), BOUND)
    return pipeline.finish(ex, reply)


async def client_hangs_up(pipeline: Pipeline, entered: asyncio.Event | None = None) -> Record:
    """What the core does when the client disconnects: cancel the pipeline's task, then record
    the request with ``client_gone``. Cancelled once ``entered`` is set, or else once the first
    attempt has started (its next await is the one cancelled)."""
    ex = exchange(pipeline)
    task = asyncio.ensure_future(pipeline.handle(ex))
    if entered is not None:
        await asyncio.wait_for(entered.wait(), BOUND)
    for _ in range(1000):
        if entered is not None or ex.attempts_started:
            break
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, BOUND)
    return pipeline.finish(ex, replies.client_gone(), client_gone=True)


def one_attempt(record: Record) -> tuple[int, str, str, int | None, tuple[str, ...]]:
    (a,) = record.attempts
    return a.number, a.endpoint, a.outcome, a.status, a.faults


DELAY = fault("host: ratings\ndelay: {fixedDelay: 10s}\n", name="slow")
DELAY_FAULT = ("UpstreamFault/default/slow:delay",)
ROUTE_TIMEOUT = ratings_vs("timeout: 50ms\n")


# -- issue 12: a cut-off attempt is recorded --------------------------------------------------


def test_a_route_timeout_during_an_upstream_fault_delay_keeps_the_attempt() -> None:
    async def run() -> Record:
        clock = FakeClock()
        sleep = FakeSleep(clock, block_from=10)
        return await request(make_pipeline(FakeUpstream(), sleep, clock, DELAY, ROUTE_TIMEOUT))

    record = asyncio.run(run())
    assert (record.status, record.flags) == (504, ("UT",))
    assert one_attempt(record) == (1, UPSTREAM, "route-timeout", None, DELAY_FAULT)
    assert record.attempts[0].duration == 0.5  # the fake sleep advanced the clock that far
    assert record.upstream_host == UPSTREAM
    line = format_text(record)
    assert " attempts=1 " in line and "faults=UpstreamFault/default/slow:delay" in line
    assert '"outcome":"route-timeout"' in format_json(record)


def test_a_client_gone_during_an_upstream_fault_delay_keeps_the_attempt() -> None:
    async def run() -> Record:
        clock = FakeClock()
        sleep = FakeSleep(clock, block_from=10)
        pipeline = make_pipeline(FakeUpstream(), sleep, clock, DELAY)
        return await client_hangs_up(pipeline, sleep.entered)

    record = asyncio.run(run())
    assert (record.status, record.flags) == (0, ("DC",))
    assert one_attempt(record) == (1, UPSTREAM, "client-gone", None, DELAY_FAULT)
    assert " attempts=1 " in format_text(record)


def test_an_attempt_cut_on_the_wire_or_in_a_hang_is_recorded() -> None:
    async def on_the_wire() -> Record:
        clock = FakeClock()
        client = FakeUpstream(hang=True)
        return await request(make_pipeline(client, FakeSleep(clock), clock, ROUTE_TIMEOUT))

    async def in_a_hang() -> Record:
        clock = FakeClock()
        hang = fault("host: ratings\nhang: {}\n", name="hang")
        pipeline = make_pipeline(FakeUpstream(), FakeSleep(clock), clock, hang)
        return await client_hangs_up(pipeline)

    assert one_attempt(asyncio.run(on_the_wire())) == (1, UPSTREAM, "route-timeout", None, ())
    record = asyncio.run(in_a_hang())
    assert one_attempt(record) == (
        1,
        UPSTREAM,
        "client-gone",
        None,
        ("UpstreamFault/default/hang:hang",),
    )


def test_an_attempt_cut_during_a_slow_body_keeps_the_upstream_status() -> None:
    async def run() -> Record:
        clock = FakeClock()
        sleep = FakeSleep(clock, block_from=5)  # 10 bytes at 1 B/s: a 10 s body
        slow = fault("host: ratings\nslowBody: {bytesPerSecond: 1}\n", name="slow")
        return await request(make_pipeline(FakeUpstream(200), sleep, clock, slow, ROUTE_TIMEOUT))

    record = asyncio.run(run())
    assert record.status == 504
    assert one_attempt(record) == (
        1, UPSTREAM, "route-timeout", 200, ("UpstreamFault/default/slow:slowBody",)
    )  # fmt: skip


def test_a_route_timeout_during_back_off_adds_no_attempt_and_frees_the_retry_slot() -> None:
    async def run() -> tuple[Record, Pipeline]:
        clock = FakeClock()
        sleep = FakeSleep(clock, block_from=0)  # every back-off blocks
        route = ratings_vs("timeout: 50ms\nretries: {attempts: 3, retryOn: 5xx}\n")
        pipeline = make_pipeline(FakeUpstream(503), sleep, clock, route)
        return await request(pipeline), pipeline

    record, pipeline = asyncio.run(run())
    assert record.status == 504
    assert one_attempt(record) == (1, UPSTREAM, "response", 503, ())
    (cluster,) = pipeline.clusters.clusters()
    assert cluster.breaker.active_retries == 0


def test_a_request_queued_for_a_connection_has_no_attempt_and_says_why() -> None:
    async def run() -> tuple[Record, Record, Pipeline]:
        clock = FakeClock()
        sleep = FakeSleep(clock, block_from=10)
        pool = (
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
            "spec:\n  host: ratings\n  trafficPolicy:\n    connectionPool:\n"
            "      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 5}\n"
        )
        pipeline = make_pipeline(FakeUpstream(), sleep, clock, DELAY, ROUTE_TIMEOUT, pool)
        first, queued = await asyncio.gather(request(pipeline), request(pipeline))
        return first, queued, pipeline

    first, queued, pipeline = asyncio.run(run())
    assert one_attempt(first) == (1, UPSTREAM, "route-timeout", None, DELAY_FAULT)
    assert queued.status == 504 and queued.attempts == ()
    assert any("while queued for a connection" in n for n in queued.notes)
    assert pipeline.stats.get(f"cluster.{CLUSTER}.upstream_rq_cancelled") == 1
    assert " attempts=0 " in format_text(queued)


# -- issue 13: retries refused before any back-off, Envoy's retry counters ---------------------


def max_retries(n: int) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        f"spec:\n  host: ratings\n  trafficPolicy:\n    connectionPool: {{http: {{maxRetries: {n}}}}}\n"
    )


def retry_stats(pipeline: Pipeline) -> dict[str, float]:
    names = ("total", "retry", "retry_overflow", "retry_limit_exceeded", "retry_success")
    return {n: pipeline.stats.get(f"cluster.{CLUSTER}.upstream_rq_{n}") for n in names}


def test_a_retry_over_max_retries_is_refused_at_once_without_back_off() -> None:
    async def run() -> tuple[Record, Record, FakeSleep, FakeUpstream, Pipeline]:
        clock = FakeClock()
        sleep = FakeSleep(clock)
        sleep.gate.clear()  # the first request's back-off waits until we open it
        client = FakeUpstream(503)
        route = ratings_vs("retries: {attempts: 1, retryOn: 5xx}\n")
        pipeline = make_pipeline(client, sleep, clock, route, max_retries(1))
        first = asyncio.ensure_future(request(pipeline, "/a"))
        await asyncio.wait_for(sleep.entered.wait(), BOUND)  # /a holds the only retry slot
        second = await request(pipeline, "/b")  # refused while /a is still backing off
        assert not first.done()
        assert sleep.calls and len(sleep.calls) == 1  # /a's back-off only: /b never slept
        sleep.gate.set()
        return await asyncio.wait_for(first, BOUND), second, sleep, client, pipeline

    first, second, _, client, pipeline = asyncio.run(run())
    assert (second.status, second.flags) == (503, ("UO",))
    assert [a.outcome for a in second.attempts] == ["response"]
    assert any("maxRetries breaker" in n for n in second.notes)
    assert (first.status, first.flags, len(first.attempts)) == (503, ("URX",), 2)
    assert client.sent == ["/a", "/b", "/a"]
    assert retry_stats(pipeline) == {
        "total": 3, "retry": 1, "retry_overflow": 1, "retry_limit_exceeded": 1, "retry_success": 0,
    }  # fmt: skip
    (cluster,) = pipeline.clusters.clusters()
    assert cluster.breaker.active_retries == 0


def test_retry_limit_exceeded_and_retry_success_are_counted() -> None:
    async def run() -> tuple[list[Record], FakeSleep, Pipeline]:
        clock = FakeClock()
        sleep = FakeSleep(clock)
        client = FakeUpstream(503)
        route = ratings_vs("retries: {attempts: 2, retryOn: 5xx}\n")
        pipeline = make_pipeline(client, sleep, clock, route)
        exhausted = await request(pipeline, "/fail")
        client.script(503, 200)
        recovered = await request(pipeline, "/ok")
        return [exhausted, recovered], sleep, pipeline

    (exhausted, recovered), sleep, pipeline = asyncio.run(run())
    assert (exhausted.status, exhausted.flags, exhausted.retries) == (503, ("URX",), 2)
    assert (recovered.status, recovered.flags, recovered.retries) == (200, (), 1)
    assert len(sleep.calls) == 3  # one back-off per retry sent, none after the last answer
    assert retry_stats(pipeline) == {
        "total": 5, "retry": 3, "retry_overflow": 0, "retry_limit_exceeded": 1, "retry_success": 1,
    }  # fmt: skip


# -- issue 13: the request path, step by step, without sockets --------------------------------


def run_one(upstream: FakeUpstream, *docs: str, sleep_from: float = float("inf")) -> tuple[
    Record, Pipeline, FakeSleep
]:  # fmt: skip
    async def run() -> tuple[Record, Pipeline, FakeSleep]:
        clock = FakeClock()
        sleep = FakeSleep(clock, block_from=sleep_from)
        pipeline = make_pipeline(upstream, sleep, clock, *docs)
        return await request(pipeline), pipeline, sleep

    return asyncio.run(run())


def test_a_forwarded_request_carries_envoys_headers_and_is_recorded_whole() -> None:
    upstream = FakeUpstream(200)
    record, pipeline, _ = run_one(upstream)
    (sent,) = upstream.requests
    assert (sent.address, sent.port, sent.path) == ("127.0.0.1", 9999, "/")
    assert sent.header("x-envoy-attempt-count") == "1"
    assert sent.header("x-request-id") == record.request_id
    assert (record.status, record.flags, record.details) == (200, (), "via_upstream")
    assert (record.cluster, record.upstream_host) == (CLUSTER, UPSTREAM)
    assert one_attempt(record) == (1, UPSTREAM, "response", 200, ())
    assert pipeline.stats.get(f"cluster.{CLUSTER}.upstream_rq_200") == 1
    assert pipeline.stats.get("http.downstream_rq_2xx") == 1


def test_retries_count_attempts_back_off_and_end_on_success() -> None:
    upstream = FakeUpstream(503, 503, 200)
    route = ratings_vs("retries: {attempts: 3, retryOn: 5xx}\n")
    record, pipeline, sleep = run_one(upstream, route)
    assert (record.status, record.flags) == (200, ())
    assert [(a.outcome, a.status) for a in record.attempts] == [
        ("response", 503), ("response", 503), ("response", 200),
    ]  # fmt: skip
    assert [r.header("x-envoy-attempt-count") for r in upstream.requests] == ["1", "2", "3"]
    # Full jitter below (2^n - 1) × 25 ms: one back-off per retry, never above its ceiling.
    assert len(sleep.calls) == 2 and sleep.calls[0] < 0.025 and sleep.calls[1] < 0.075
    assert retry_stats(pipeline)["retry"] == 2 and retry_stats(pipeline)["retry_success"] == 1


def test_a_connect_failure_is_a_503_uf_and_retried_on_connect_failure() -> None:
    refused = UpstreamFailure("connection failure", "UF", "delayed connect error: 111")
    record, pipeline, _ = run_one(
        FakeUpstream(refused), ratings_vs("retries: {attempts: 1, retryOn: connect-failure}\n")
    )
    assert (record.status, record.flags) == (503, ("UF", "URX"))
    assert [a.outcome for a in record.attempts] == ["connect-failure", "connect-failure"]
    assert pipeline.stats.get(f"cluster.{CLUSTER}.upstream_cx_connect_fail") == 2


def test_each_attempt_gets_its_per_try_timeout_then_504_ut() -> None:
    route = ratings_vs("retries: {attempts: 1, perTryTimeout: 10ms, retryOn: 5xx}\n")
    record, pipeline, _ = run_one(FakeUpstream(hang=True), route)
    assert (record.status, record.flags) == (504, ("URX", "UT"))  # in Envoy's order
    assert record.details == "upstream_per_try_timeout"
    assert [a.outcome for a in record.attempts] == ["per-try-timeout"] * 2
    assert pipeline.stats.get(f"cluster.{CLUSTER}.upstream_rq_per_try_timeout") == 2


def test_the_fault_filter_delays_then_aborts_before_any_upstream_request() -> None:
    upstream = FakeUpstream(200)
    route = ratings_vs(
        "fault:\n  delay: {fixedDelay: 7s, percentage: {value: 100}}\n"
        "  abort: {httpStatus: 418, percentage: {value: 100}}\n"
    )
    record, pipeline, sleep = run_one(upstream, route)
    assert sleep.calls == [7.0]  # the delay, through the injected sleep: no real wait
    assert (record.status, record.flags, record.faults) == (418, ("DI", "FI"), ("delay", "abort"))
    assert record.attempts == () and upstream.requests == []
    assert pipeline.stats.get("fault.aborts_injected") == 1


def test_a_full_pending_queue_is_503_uo_with_an_overflow_attempt() -> None:
    async def run() -> tuple[Record, FakeUpstream]:
        clock = FakeClock()
        upstream = FakeUpstream(hang=True)
        pool = (
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
            "spec:\n  host: ratings\n  trafficPolicy:\n    connectionPool:\n"
            "      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n"
        )
        pipeline = make_pipeline(upstream, FakeSleep(clock), clock, pool)
        holding = asyncio.ensure_future(request(pipeline, "/holds"))
        await asyncio.wait_for(upstream.entered.wait(), BOUND)
        queued = asyncio.ensure_future(request(pipeline, "/queued"))
        await asyncio.sleep(0)
        refused = await asyncio.wait_for(request(pipeline, "/refused"), BOUND)
        for task in (holding, queued):
            task.cancel()
        await asyncio.gather(holding, queued, return_exceptions=True)
        return refused, upstream

    refused, upstream = asyncio.run(run())
    assert (refused.status, refused.flags) == (503, ("UO",))
    assert [a.outcome for a in refused.attempts] == ["overflow"]
    assert upstream.sent == ["/holds"]  # the queued and the refused request never went out


def test_a_client_that_gives_up_is_recorded_with_what_the_route_still_allowed() -> None:
    async def run() -> Record:
        clock = FakeClock()
        route = ratings_vs("timeout: 10s\nretries: {attempts: 2, perTryTimeout: 3s}\n")
        pipeline = make_pipeline(FakeUpstream(hang=True), FakeSleep(clock), clock, route)
        ex = exchange(pipeline)
        task = asyncio.ensure_future(pipeline.handle(ex))
        for _ in range(1000):
            if ex.attempts_started:
                break
            await asyncio.sleep(0)
        clock.advance(1.5)
        ex.client_gave_up(clock.monotonic())  # what the enforcer does when the client goes
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, BOUND)
        return pipeline.finish(ex, replies.client_gone(), client_gone=True)

    record = asyncio.run(run())
    assert record.gave_up is not None
    assert (record.gave_up.waited, record.gave_up.retries_left) == (1.5, True)
    assert record.notes[-1] == (
        "client gave up after 1.5s waiting for ratings; the route allows 3 × 3s attempts "
        "within a 10s timeout — retries here are wasted"
    )
    assert (record.status, record.flags) == (0, ("DC",))


# -- issue 14: streamed answers ----------------------------------------------------------------


def run_streaming(upstream: FakeUpstream, *docs: str) -> tuple[replies.Reply, Exchange, Pipeline]:
    async def run() -> tuple[replies.Reply, Exchange, Pipeline]:
        clock = FakeClock()
        pipeline = make_pipeline(upstream, FakeSleep(clock), clock, *docs)
        pipeline.services.streaming = True
        ex = exchange(pipeline)
        return await asyncio.wait_for(pipeline.handle(ex), BOUND), ex, pipeline

    return asyncio.run(run())


def test_a_streamed_answer_leaves_the_path_with_its_body_still_open() -> None:
    body = FakeBody([b"data: 1\n\n"])
    reply, ex, _ = run_streaming(FakeUpstream(streamed(200, body)), ratings_vs("timeout: 3s\n"))
    assert reply.stream is body and body.closed == 0
    assert reply.body == b"" and not any(k == "content-length" for k, _ in reply.headers)
    assert body.deadline is not None  # the route timeout goes on over the body
    assert [a.outcome for a in ex.attempts] == ["response"]


def test_a_streamed_answer_that_is_retried_is_closed_first() -> None:
    first, second = FakeBody(then="wait"), FakeBody([b"ok"])
    upstream = FakeUpstream(streamed(503, first), streamed(200, second))
    route = ratings_vs("retries: {attempts: 1, retryOn: 5xx}\n")
    reply, _, _ = run_streaming(upstream, route)
    assert first.closed == 1 and reply.stream is second and second.closed == 0


def test_a_streamed_answer_holds_its_breaker_slot_until_its_body_ends() -> None:
    pool = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings}\n"
        "spec:\n  host: ratings\n  trafficPolicy:\n    connectionPool:\n"
        "      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n"
    )
    body = FakeBody(then="wait")
    reply, _, pipeline = run_streaming(FakeUpstream(streamed(200, body)), pool)
    (cluster,) = pipeline.clusters.clusters()
    assert cluster.breaker.active_connections == 1 and cluster.active_requests == 1
    assert reply.stream is not None
    reply.stream.close()
    assert cluster.breaker.active_connections == 0 and cluster.active_requests == 0
