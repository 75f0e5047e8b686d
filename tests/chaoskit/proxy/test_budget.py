"""The body budget's bookkeeping, replies and per-flow accounting, without a running proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from chaoskit.proxy import budget, budget_guard, patches, upstream
from chaoskit.proxy.budget import BodyBudget, Holding
from chaoskit.proxy.budget_guard import BodyBudgetGuard
from chaoskit.proxy.core import ChaosCore
from chaoskit.proxy.forwarding import too_large_note
from chaoskit.proxy.http1_connection import Http1Connection
from chaoskit.proxy.http1_response import ResponseParser
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.upstream import ResponseTooLarge, UpstreamClient
from chaoskit.rng import Seeds

MiB = 1024 * 1024

# -- BodyBudget -----------------------------------------------------------------------------------


def test_reservations_fit_until_the_total_and_come_back_on_release() -> None:
    b = BodyBudget(100)
    assert b.reserve(60) and b.reserve(40)
    assert not b.reserve(1)  # full: nothing taken
    assert b.in_use == 100
    b.release(40)
    assert b.reserve(30) and b.in_use == 90 and b.peak == 100
    b.release(90)
    assert b.in_use == 0


def test_a_refused_reservation_takes_nothing() -> None:
    b = BodyBudget(100)
    assert b.reserve(70)
    assert not b.reserve(31)
    assert b.in_use == 70 and b.reserve(30)


def test_zero_means_no_global_budget_but_still_counts() -> None:
    b = BodyBudget(0)
    assert b.unlimited and b.fits_ever(10**12)
    assert b.reserve(10**12) and b.in_use == 10**12


def test_a_forced_reservation_overdraws() -> None:
    b = BodyBudget(100)
    assert b.reserve(90) and b.reserve(20, force=True) and b.in_use == 110
    assert not b.reserve(1)
    h = Holding(b)
    assert h.take(5, force=True) and h.held == 5


def test_releasing_more_than_held_cannot_grow_the_budget() -> None:
    b = BodyBudget(100)
    b.reserve(10)
    b.release(50)
    assert b.in_use == 0 and not b.reserve(101) and b.reserve(100)


@pytest.mark.parametrize("n", [-1, -100])
def test_negative_amounts_are_refused(n: int) -> None:
    b = BodyBudget(100)
    with pytest.raises(ValueError):
        b.reserve(n)
    with pytest.raises(ValueError):
        b.release(n)
    with pytest.raises(ValueError):
        BodyBudget(n)


def test_fits_ever_compares_with_the_whole_budget() -> None:
    b = BodyBudget(100)
    b.reserve(100)
    assert b.fits_ever(100) and not b.fits_ever(101)


def test_the_default_is_four_requests_at_the_per_request_cap() -> None:
    assert budget.DEFAULT_BODY_BUDGET == 256 * MiB == 4 * upstream.MAX_RESPONSE_BODY


@pytest.mark.parametrize(
    ("text", "size"),
    [("256m", 256 * MiB), ("1g", 1024 * MiB), ("64k", 65536), ("65536", 65536), ("0", 0),
     ("512MiB", 512 * MiB), (" 2M ", 2 * MiB), ("1gb", 1024 * MiB)],
)  # fmt: skip
def test_sizes_are_read_like_mitmproxys(text: str, size: int) -> None:
    assert budget.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1m", "1.5g", "m", "12t"])
def test_what_is_not_a_size_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        budget.parse_size(text)


# -- Holding ----------------------------------------------------------------------------------


def test_a_holding_releases_everything_it_took_once() -> None:
    b = BodyBudget(100)
    h = Holding(b)
    assert h.take_request(30) and h.take(20) and h.take(0)
    assert (h.held, h.request_bytes, b.in_use) == (50, 30, 50)
    assert h.release() == 50 and b.in_use == 0
    assert h.release() == 0 and b.in_use == 0


def test_a_refused_take_leaves_the_holding_as_it_was() -> None:
    b = BodyBudget(100)
    h = Holding(b)
    assert h.take_request(80)
    assert not h.take(21) and not h.take_request(21)
    assert (h.held, h.request_bytes, b.in_use) == (80, 80, 80)


def test_after_its_release_a_holding_reserves_nothing() -> None:
    # A mirror still reading when its flow ended: nothing would ever release it.
    b = BodyBudget(100)
    h = Holding(b)
    h.release()
    assert h.take(1000) and b.in_use == 0 and h.held == 0


# -- the current holding (for upstream bodies) ------------------------------------------------


def test_the_current_holding_follows_the_task_and_the_tasks_it_starts() -> None:
    seen: dict[str, Holding | None] = {}
    mine, other = Holding(BodyBudget(10)), Holding(BodyBudget(10))

    async def child() -> None:
        seen["child"] = budget.current_holding()

    async def flow(name: str, holding: Holding) -> None:
        budget.hold_for_current_task(holding)
        await asyncio.sleep(0)
        seen[name] = budget.current_holding()
        await asyncio.ensure_future(child()) if name == "mine" else None

    async def main() -> None:
        await asyncio.gather(flow("mine", mine), flow("other", other))
        seen["outside"] = budget.current_holding()

    asyncio.run(main())
    assert seen == {"mine": mine, "other": other, "child": mine, "outside": None}


# -- what a request announces -----------------------------------------------------------------


def _request(headers: list[tuple[bytes, bytes]], version: str = "HTTP/1.1") -> http.Request:
    req = http.Request.make("POST", "http://svc/")
    req.headers = http.Headers(headers)  # exactly these (make() adds a content-length)
    req.http_version = version
    return req


@pytest.mark.parametrize(
    ("headers", "version", "length"),
    [
        ([(b"content-length", b"1234")], "HTTP/1.1", 1234),
        ([(b"content-length", b" 7 ")], "HTTP/1.1", 7),
        ([], "HTTP/1.1", 0),  # HTTP/1 without a length: no body
        ([], "HTTP/2.0", None),  # HTTP/2 may send one without announcing it
        ([(b"transfer-encoding", b"chunked")], "HTTP/1.1", None),
        ([(b"transfer-encoding", b"chunked"), (b"content-length", b"5")], "HTTP/1.1", None),
        ([(b"content-length", b"5"), (b"content-length", b"5")], "HTTP/1.1", None),
        ([(b"content-length", b"-5")], "HTTP/1.1", None),
        ([(b"content-length", b"5x")], "HTTP/1.1", None),
    ],
)
def test_the_announced_length_or_none_when_it_must_be_counted(
    headers: list[tuple[bytes, bytes]], version: str, length: int | None
) -> None:
    assert budget_guard.announced_length(_request(headers, version)) == length


# -- replies ------------------------------------------------------------------------------------


def test_over_the_budget_is_envoys_overload_manager_reply() -> None:
    r = budget.overloaded()
    assert (r.status, r.body, r.flags, r.details) == (503, b"envoy overloaded", ("OM",), "overload")
    assert ("content-length", "16") in r.headers


def test_larger_than_the_whole_budget_is_envoys_buffer_limit_reply() -> None:
    r = budget.payload_too_large()
    assert (r.status, r.body, r.details) == (413, b"Payload Too Large", "request_payload_too_large")


# -- upstream bodies --------------------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    """Takes what the connection writes; the test plays the upstream's side."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


class FakeResponse:
    """An upstream's answer as it arrives: the head, then the body in ``chunk``-sized pieces
    (framed by ``content-length`` when ``announced``, else by the close)."""

    def __init__(self, body: bytes, *, announced: bool, chunk: int = 10) -> None:
        length = f"content-length: {len(body)}\r\n" if announced else ""
        self.head = f"HTTP/1.1 200 OK\r\n{length}\r\n".encode()
        self.pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
        self.announced = announced
        self.handed = 0  # body pieces handed to the connection

    @property
    def reads(self) -> int:
        return self.handed


def _read(resp: FakeResponse, holding: Holding | None) -> bytes:
    """The body as the pooled connection reads it, bounded by the real :class:`BodyGuard`."""

    async def main() -> bytes:
        conn = Http1Connection(("http", "127.0.0.1", 1))
        conn.connection_made(FakeTransport())
        parser = ResponseParser()
        guard = upstream.BodyGuard(holding)
        exchange = asyncio.ensure_future(
            conn.exchange(b"GET / HTTP/1.1\r\n\r\n", b"", parser, guard.on_head, guard.on_body)
        )
        await asyncio.sleep(0)
        conn.data_received(resp.head)
        for piece in resp.pieces:
            if conn.closed:  # a refusal closes the connection: nothing more is read
                break
            resp.handed += 1
            conn.data_received(piece)
        if not conn.closed and not resp.announced:
            conn.connection_lost(None)  # the close ends an unannounced body
        await exchange
        return parser.body()

    return asyncio.run(main())


#: Upstream bodies above the size that always fits (:data:`budget.ALWAYS_FITS`).
K = budget.ALWAYS_FITS


def test_an_announced_upstream_body_is_reserved_for_the_flow() -> None:
    b = BodyBudget(10 * K)
    h = Holding(b)
    assert _read(FakeResponse(b"x" * 6 * K, announced=True), h) == b"x" * 6 * K
    assert h.held == 6 * K and b.in_use == 6 * K


def test_an_announced_body_that_does_not_fit_is_refused_before_it_is_read() -> None:
    b = BodyBudget(10 * K)
    b.reserve(5 * K)
    resp = FakeResponse(b"x" * 6 * K, announced=True)
    with pytest.raises(ResponseTooLarge) as e:
        _read(resp, Holding(b))
    assert (e.value.status, e.value.limit, e.value.scope) == (200, 10 * K, "budget")
    assert resp.reads == 0 and b.in_use == 5 * K
    assert "body budget" in str(e.value)


def test_an_unannounced_body_is_reserved_chunk_by_chunk_and_refused_when_it_stops_fitting() -> None:
    b = BodyBudget(10 * K)
    b.reserve(7 * K + K // 2)
    h = Holding(b)
    resp = FakeResponse(b"y" * 6 * K, announced=False, chunk=K)
    with pytest.raises(ResponseTooLarge) as e:
        _read(resp, h)
    assert e.value.scope == "budget"
    # the first chunk always fits, the second fits, the third does not: reading stopped there
    assert h.held == 2 * K and resp.handed == 3
    body = b"z" * 3 * K
    assert _read(FakeResponse(body, announced=False, chunk=K), Holding(BodyBudget(3 * K))) == body


@pytest.mark.parametrize("announced", [True, False])
def test_a_small_upstream_body_always_fits(announced: bool) -> None:
    # Its request was admitted and forwarded: refusing a few bytes of reply would be worse.
    b = BodyBudget(100)
    b.reserve(100)
    body = b"s" * budget.ALWAYS_FITS
    assert _read(FakeResponse(body, announced=announced, chunk=4096), Holding(b)) == body
    assert b.in_use == 100 + len(body)
    with pytest.raises(ResponseTooLarge):
        _read(FakeResponse(body + b"!", announced=announced, chunk=4096), Holding(b))


def test_without_a_flow_only_the_per_response_cap_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "MAX_RESPONSE_BODY", 50)
    assert _read(FakeResponse(b"a" * 50, announced=True), None) == b"a" * 50
    for announced in (True, False):
        with pytest.raises(ResponseTooLarge) as e:
            _read(FakeResponse(b"a" * 51, announced=announced), Holding(BodyBudget(1000)))
        assert (e.value.limit, e.value.scope) == (50, "response")


def test_the_record_says_which_limit_refused_the_body() -> None:
    per_response = too_large_note(ResponseTooLarge(200, 64 * MiB))
    global_budget = too_large_note(ResponseTooLarge(502, 256 * MiB, "budget"))
    assert "larger than 64 MiB" in per_response and "budget" not in per_response
    assert "502" in global_budget and "body budget (256 MiB" in global_budget
    assert all("response_payload_too_large" in n for n in (per_response, global_budget))


# -- the addon, on flows built without a proxy --------------------------------------------------


def _guard(total: int) -> tuple[BodyBudgetGuard, ChaosCore]:
    patches.apply()  # as the runtime does (the guard releases at ``sent`` only with them)
    core = ChaosCore(Pipeline(Seeds(1), UpstreamClient()))
    return BodyBudgetGuard(core, total), core


def _flow(headers: list[tuple[bytes, bytes]], body: bytes = b"") -> http.HTTPFlow:
    f = tflow.tflow()
    f.request = _request([(b"host", b"svc"), *headers])
    f.request.data.content = body
    return f


def test_a_request_that_does_not_fit_is_answered_overloaded_and_recorded() -> None:
    guard, core = _guard(100)
    records = []
    core.on_record.append(records.append)
    guard.budget.reserve(60)
    flow = _flow([(b"content-length", b"50"), (b"expect", b"100-continue")])
    guard.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert flow.response.content == b"envoy overloaded"
    assert flow.response.headers["connection"] == "close"
    assert "expect" not in flow.request.headers  # no "100 Continue" before the final answer
    assert guard.answers_early(flow)
    (record,) = records
    assert (record.status, record.flags, record.details) == (503, ("OM",), "overload")
    assert "50 bytes does not fit" in record.notes[0]
    assert core.pipeline.stats.get("http.downstream_rq_overload_close") == 1
    assert guard.budget.in_use == 60


def test_a_request_envoys_codec_would_reject_gets_that_answer_first() -> None:
    guard, core = _guard(100)
    flow = _flow([(b"content-length", b"500"), (b"bad header", b"x")])
    guard.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 400
    assert flow.response.headers.get_all("connection") == ["close"]
    assert core.pipeline.stats.get("http.downstream_rq_overload_close") == 0
    assert guard.answers_early(flow)


def test_a_request_larger_than_the_whole_budget_is_413() -> None:
    guard, core = _guard(100)
    flow = _flow([(b"content-length", b"101")])
    guard.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 413
    assert core.pipeline.stats.get("http.downstream_rq_too_large") == 1


def test_what_a_flow_holds_comes_back_when_it_ends_however_it_ends() -> None:
    guard, _ = _guard(1000)
    answered, failed, abandoned = (_flow([(b"content-length", b"100")]) for _ in range(3))
    for f in (answered, failed, abandoned):
        guard.requestheaders(f)
    assert guard.budget.in_use == 300
    guard.response(answered)  # the reply is not sent yet: still held
    assert guard.budget.in_use == 300
    guard.sent(answered)  # handed to the connection
    guard.error(failed)
    assert guard.budget.in_use == 100
    guard.client_disconnected(abandoned.client_conn)
    assert guard.budget.in_use == 0 and not guard._holdings and not guard._by_client


def test_an_unannounced_body_is_counted_as_it_arrives() -> None:
    guard, _ = _guard(100)
    flow = _flow([(b"transfer-encoding", b"chunked")])
    guard.requestheaders(flow)
    assert guard.body_data(flow, 60) and guard.budget.in_use == 60
    assert not guard.body_data(flow, 41)
    assert flow.response is not None and flow.response.status_code == 503
    assert guard.answers_early(flow)
    guard.error(flow)
    assert guard.budget.in_use == 0


def test_an_announced_body_is_not_counted_twice() -> None:
    guard, _ = _guard(100)
    flow = _flow([(b"content-length", b"80")], b"x" * 80)
    guard.requestheaders(flow)
    assert guard.body_data(flow, 80) and guard.budget.in_use == 80
    guard.request(flow)  # the whole body was already counted
    assert flow.response is None and guard.budget.in_use == 80


def test_a_body_nobody_counted_is_counted_at_the_request_hook() -> None:
    guard, _ = _guard(100)
    flow = _flow([(b"transfer-encoding", b"chunked")], b"x" * 101)
    guard.requestheaders(flow)
    guard.request(flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert budget.current_holding() is guard._holdings[flow.id]
    budget.hold_for_current_task(None)


def test_a_finished_flow_lets_go_of_its_large_bodies_only() -> None:
    guard, _ = _guard(0)
    big, small = b"b" * budget.STRIP_THRESHOLD, b"s" * (budget.STRIP_THRESHOLD - 1)
    flow = _flow([(b"content-length", str(len(big)).encode())], big)
    flow.response = http.Response.make(200, small)
    guard.requestheaders(flow)
    guard.sent(flow)
    assert flow.request.data.content is None and flow.response.content == small


def test_under_a_ui_that_shows_flows_their_bodies_are_kept() -> None:
    guard, _ = _guard(0)
    guard.strip_bodies = False
    big = b"b" * budget.STRIP_THRESHOLD
    flow = _flow([(b"content-length", str(len(big)).encode())], big)
    guard.requestheaders(flow)
    guard.error(flow)
    assert flow.request.content == big


# -- giving memory back to the OS ---------------------------------------------------------------


class FakeLater:
    def __init__(self) -> None:
        self.calls: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, fn: Callable[[], None]) -> None:
        self.calls.append((delay, fn))

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for _, fn in calls:
            fn()


def test_the_heap_is_trimmed_once_after_enough_bodies_were_let_go() -> None:
    trims: list[int] = []
    later = FakeLater()
    t = budget.HeapTrimmer(lambda: trims.append(1), later)
    t.freed_bytes(budget.TRIM_AFTER - 1)
    assert later.calls == []  # not enough yet
    t.freed_bytes(1)
    t.freed_bytes(10 * budget.TRIM_AFTER)  # coalesced into the pending trim
    assert [d for d, _ in later.calls] == [budget.TRIM_DELAY] and trims == []
    later.run()
    assert trims == [1] and t.freed == 0 and not t.pending
    t.freed_bytes(budget.TRIM_AFTER)
    later.run()
    assert trims == [1, 1]


def test_without_malloc_trim_nothing_is_scheduled() -> None:
    later = FakeLater()
    budget.HeapTrimmer(None, later).freed_bytes(10 * budget.TRIM_AFTER)
    assert later.calls == []


def test_glibc_malloc_trim_is_found_and_callable_here() -> None:
    import platform

    trim = budget.malloc_trim()
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert trim is not None and trim() in (0, 1)
