"""The request path without mitmproxy or sockets: a fake upstream client, a fake clock and an
injected sleep, so every await that matters (an UpstreamFault delay, a back-off) is visible.

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
from chaoskit.proxy.pipeline import Exchange, Pipeline
from chaoskit.proxy.upstream import UpstreamResponse
from chaoskit.records import Record
from chaoskit.rng import Seeds
from chaoskit.routing.request import RequestInfo
from chaoskit.sources import validated
from tests.builders import fault, ratings_vs, service_entry

UPSTREAM = "127.0.0.1:9999"
CLUSTER = "outbound|80||ratings.default.svc.cluster.local"
#: Every wait in these tests is bounded by this (a test that hangs fails instead).
BOUND = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


class FakeSleep:
    """Records every sleep and advances the fake clock; a sleep at or above ``block_from``
    seconds never ends by itself (only a cancellation ends it), and one below waits at the
    ``gate`` when it is closed."""

    def __init__(self, clock: FakeClock, block_from: float = float("inf")) -> None:
        self.clock = clock
        self.block_from = block_from
        self.calls: list[float] = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.entered.set()
        self.clock.now += min(seconds, 0.5)
        if seconds >= self.block_from:
            await asyncio.Event().wait()
        await self.gate.wait()


class FakeClient:
    """Answers ``statuses`` in turn (the last one repeats); ``hang`` never answers."""

    def __init__(self, *statuses: int, hang: bool = False) -> None:
        self.statuses = list(statuses) or [200]
        self.hang = hang
        self.sent: list[str] = []
        self.entered = asyncio.Event()

    async def send(self, method, scheme, address, port, path, headers, body, connect_timeout):
        self.sent.append(path)
        self.entered.set()
        if self.hang:
            await asyncio.Event().wait()
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return UpstreamResponse(status, "", (("content-type", "text/plain"),), b"0123456789")


def make_pipeline(client: FakeClient, sleep: FakeSleep, clock: FakeClock, *docs: str) -> Pipeline:
    pipeline = Pipeline(Seeds(1), client, clock=clock, sleep=sleep)  # type: ignore[arg-type]
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
        return await request(make_pipeline(FakeClient(), sleep, clock, DELAY, ROUTE_TIMEOUT))

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
        pipeline = make_pipeline(FakeClient(), sleep, clock, DELAY)
        return await client_hangs_up(pipeline, sleep.entered)

    record = asyncio.run(run())
    assert (record.status, record.flags) == (0, ("DC",))
    assert one_attempt(record) == (1, UPSTREAM, "client-gone", None, DELAY_FAULT)
    assert " attempts=1 " in format_text(record)


def test_an_attempt_cut_on_the_wire_or_in_a_hang_is_recorded() -> None:
    async def on_the_wire() -> Record:
        clock = FakeClock()
        client = FakeClient(hang=True)
        return await request(make_pipeline(client, FakeSleep(clock), clock, ROUTE_TIMEOUT))

    async def in_a_hang() -> Record:
        clock = FakeClock()
        hang = fault("host: ratings\nhang: {}\n", name="hang")
        pipeline = make_pipeline(FakeClient(), FakeSleep(clock), clock, hang)
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
        return await request(make_pipeline(FakeClient(200), sleep, clock, slow, ROUTE_TIMEOUT))

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
        pipeline = make_pipeline(FakeClient(503), sleep, clock, route)
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
        pipeline = make_pipeline(FakeClient(), sleep, clock, DELAY, ROUTE_TIMEOUT, pool)
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
    async def run() -> tuple[Record, Record, FakeSleep, FakeClient, Pipeline]:
        clock = FakeClock()
        sleep = FakeSleep(clock)
        sleep.gate.clear()  # the first request's back-off waits until we open it
        client = FakeClient(503)
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
        client = FakeClient(503)
        route = ratings_vs("retries: {attempts: 2, retryOn: 5xx}\n")
        pipeline = make_pipeline(client, sleep, clock, route)
        exhausted = await request(pipeline, "/fail")
        client.statuses = [503, 200]
        recovered = await request(pipeline, "/ok")
        return [exhausted, recovered], sleep, pipeline

    (exhausted, recovered), sleep, pipeline = asyncio.run(run())
    assert (exhausted.status, exhausted.flags, exhausted.retries) == (503, ("URX",), 2)
    assert (recovered.status, recovered.flags, recovered.retries) == (200, (), 1)
    assert len(sleep.calls) == 3  # one back-off per retry sent, none after the last answer
    assert retry_stats(pipeline) == {
        "total": 5, "retry": 3, "retry_overflow": 0, "retry_limit_exceeded": 1, "retry_success": 1,
    }  # fmt: skip
