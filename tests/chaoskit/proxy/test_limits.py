"""The connection cap and its default, the open-files limit, the addon's options and log lines
(fake clients, fake ``resource``: no sockets, the test process's limits untouched)."""

from __future__ import annotations

import asyncio
import logging
import types
from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from chaoskit.proxy import codec_limits, limits
from chaoskit.proxy.limits import DownstreamLimits
from chaoskit.stats import Stats

ADMIN = "reverse:http://127.0.0.1:9@127.0.0.1:15000"


def client(n: int, spec: str = "regular@127.0.0.1:15001") -> Any:
    return types.SimpleNamespace(
        id=f"c{n}", error=None, proxy_mode=types.SimpleNamespace(full_spec=spec)
    )


def addon(cap: int, stats: Stats | None = None) -> DownstreamLimits:
    return DownstreamLimits(
        stats or Stats(), max_connections=cap, request_headers_timeout=0,
        is_admin=lambda c: c.proxy_mode.full_spec == ADMIN,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("nofile", "cap"),
    [(256, 48), (1024, 432), (4096, 1968), (20_000, 9920), (100, 16), (10**7, 32_768),
     (None, 32_768)],
)  # fmt: skip
def test_the_default_cap_leaves_room_for_two_descriptors_per_connection(nofile, cap):
    assert limits.default_max_connections(nofile) == cap
    if nofile is not None and nofile > limits.RESERVED_FDS:
        worst = cap * limits.FDS_PER_CONNECTION + limits.RESERVED_FDS
        assert worst <= nofile or cap == limits.MIN_MAX_CONNECTIONS


def test_connections_past_the_cap_are_closed_and_counted(caplog):
    stats = Stats()
    limit = addon(2, stats)
    clients = [client(i) for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="chaoskit"):
        for c in clients:
            limit.client_connected(c)
    assert [c.error is None for c in clients] == [True, True, False, False, False]
    assert stats.get("listener.downstream_cx_overflow") == 3
    assert limit.open_connections == 2
    reached = [r for r in caplog.records if "connection limit reached" in r.getMessage()]
    assert len(reached) == 1  # one line, not one per refused connection
    assert "max_connections 2" in reached[0].getMessage()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


def lines(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_one_line_when_it_has_room_again(caplog):
    limit = addon(20)
    clients = [client(i) for i in range(23)]
    with caplog.at_level(logging.WARNING, logger="chaoskit"):
        for c in clients:
            limit.client_connected(c)
        for c in clients[20:]:  # refused ones leave: nothing changes
            limit.client_disconnected(c)
        limit.client_disconnected(clients[0])  # 19 open: not yet 10 % of the cap free
        assert not lines(caplog, "again")
        limit.client_connected(client(99))  # 20 open
        limit.client_connected(client(98))  # refused: still the same episode, no new line
        limit.client_disconnected(clients[1])
        limit.client_disconnected(clients[2])  # 18 open
    assert len(lines(caplog, "connection limit reached")) == 1
    (again,) = lines(caplog, "accepting connections again")
    assert "18 open, max_connections 20); 4 refused meanwhile" in again


def test_flapping_at_the_cap_writes_two_lines_per_quiet_period(caplog):
    clock = FakeClock()
    limit = DownstreamLimits(Stats(), max_connections=2, request_headers_timeout=0, clock=clock)
    held = [client(0), client(1)]
    with caplog.at_level(logging.WARNING, logger="chaoskit"):
        for c in held:
            limit.client_connected(c)
        for i in range(50):  # one in, one refused, one out, one in...
            limit.client_connected(client(100 + i))
            limit.client_disconnected(held[0])
            held[0] = client(200 + i)
            limit.client_connected(held[0])
            clock.now += 0.1
        clock.now += limits.LOG_QUIET_SECONDS
        limit.client_connected(client(999))  # refused again, after the quiet period
    assert len(lines(caplog, "connection limit reached")) == 2
    assert len(lines(caplog, "accepting connections again")) == 1


def test_the_admin_listener_has_headroom_past_the_cap():
    limit = addon(2)
    for i in range(2):
        limit.client_connected(client(i))
    refused = client(10)
    limit.client_connected(refused)
    assert refused.error
    admins = [client(20 + i, ADMIN) for i in range(limits.ADMIN_HEADROOM + 1)]
    for c in admins:
        limit.client_connected(c)
    assert [c.error is None for c in admins] == [True] * limits.ADMIN_HEADROOM + [False]


def test_a_connection_that_was_never_counted_is_ignored_on_disconnect():
    limit = addon(2)
    limit.client_disconnected(client(1))
    assert limit.open_connections == 0


def test_a_silent_connection_is_timed_and_the_timer_cancelled_when_it_leaves():
    async def main() -> None:
        limit = DownstreamLimits(Stats(), max_connections=5, request_headers_timeout=30)
        c = client(1)
        limit.client_connected(c)
        timer = limit._silent[c.id]
        limit.client_disconnected(c)
        assert timer.cancelled()
        assert not limit._silent

    asyncio.run(main())


def test_a_silent_connection_past_its_deadline_is_closed_with_408(monkeypatch):
    stats = Stats()
    limit = DownstreamLimits(stats, max_connections=5, request_headers_timeout=0)
    c = client(1)
    limit.client_connected(c)
    closed: list[bytes] = []
    monkeypatch.setattr(
        codec_limits, "close_client", lambda cl, reply: closed.append(reply) or True
    )
    limit._silent_too_long(c)
    assert closed == [codec_limits.REQUEST_HEADER_TIMEOUT]
    assert stats.get("http.downstream_rq_header_timeout") == 1
    c2 = client(2)
    limit.client_connected(c2)
    limit.next_layer(types.SimpleNamespace(context=types.SimpleNamespace(client=c2),
                                          data_client=lambda: b"GET "))  # fmt: skip
    assert limits.spoke(c2)  # it sent something: its protocol's own timers apply
    limit._silent_too_long(c2)
    assert len(closed) == 1


def test_the_cap_follows_the_open_files_limit_when_not_set(monkeypatch):
    limit = DownstreamLimits(Stats())
    monkeypatch.setattr(limits, "open_files_limit", lambda: 256)
    assert limit.max_connections == 48
    monkeypatch.setattr(limits, "open_files_limit", lambda: 1024)
    assert limit.max_connections == 432


@pytest.mark.parametrize("bad", [{"max_connections": 0}, {"request_headers_timeout": -1.0}])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        DownstreamLimits(Stats(), **bad)


def test_the_options_under_mitmdump():
    asyncio.run(_options_under_mitmdump())  # taddons outside a running loop leaks a new one


async def _options_under_mitmdump() -> None:
    limit = DownstreamLimits(Stats(), max_connections=7, request_headers_timeout=2.5)
    with taddons.context(limit) as tctx:
        assert tctx.options.chaoskit_max_connections == 7
        assert tctx.options.chaoskit_request_headers_timeout == "2.5s"
        tctx.configure(limit, chaoskit_max_connections=11, chaoskit_request_headers_timeout="250ms")
        assert limit.max_connections == 11
        assert limit._request_headers_timeout == 0.25
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(limit, chaoskit_max_connections=0)
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(limit, chaoskit_request_headers_timeout="soon")
        assert limit.max_connections == 11  # the bad values were rolled back


def test_the_default_header_timeout_is_ten_seconds():
    async def check() -> None:
        with taddons.context(DownstreamLimits(Stats())) as tctx:
            assert tctx.options.chaoskit_request_headers_timeout == "10s"
            assert tctx.options.chaoskit_max_connections is None

    asyncio.run(check())


def test_running_routes_the_guards_counters_to_the_proxys_stats():
    stats = Stats()
    limit = DownstreamLimits(stats)
    previous = codec_limits.set_stat_sink(None)
    try:
        limit.running()
        codec_limits.count("http.downstream_rq_header_timeout")
        limit.done()
        codec_limits.count("http.downstream_rq_header_timeout")  # after done: not counted
    finally:
        codec_limits.set_stat_sink(previous)
    assert stats.get("http.downstream_rq_header_timeout") == 1


# -- the open-files limit -------------------------------------------------------------------------


class FakeResource:
    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int, refuse_above: int | None = None) -> None:
        self.limits = (soft, hard)
        self.refuse_above = refuse_above

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, value: tuple[int, int]) -> None:
        if self.refuse_above is not None and value[0] > self.refuse_above:
            raise ValueError("not allowed")
        self.limits = value


@pytest.mark.parametrize(
    ("soft", "hard", "refuse_above", "after"),
    [
        (256, 4096, None, 4096),  # Linux-like: up to the hard limit
        (1024, 1_048_576, None, 65_536),  # a huge hard limit: up to the ceiling
        (256, -1, 10_240, 10_240),  # macOS: unlimited hard, but OPEN_MAX
        (256, 256, None, 256),  # nothing to raise
        (100_000, 200_000, None, 100_000),  # never lowered
    ],
)
def test_raise_open_files_limit(monkeypatch, soft, hard, refuse_above, after):
    fake = FakeResource(soft, hard, refuse_above)
    monkeypatch.setattr(limits, "resource", fake)
    assert limits.raise_open_files_limit() == (soft, after)
    assert fake.limits[1] == hard  # the hard limit is never touched
