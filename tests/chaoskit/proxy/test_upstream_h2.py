"""One HTTP/2 exchange as the request path sends it, against a real HTTP/2 server: a buffered
body bounded by the global body budget as an HTTP/1.1 one is (test_budget.py), and the
client's request trailers sent after the body."""

from __future__ import annotations

import pytest

from chaoskit.proxy import budget, http2_trailers
from chaoskit.proxy.budget import BodyBudget, Holding, hold_for_current_task
from chaoskit.proxy.http2_pool import Http2Pool
from chaoskit.proxy.upstream import ResponseTooLarge, UpstreamResponse
from chaoskit.proxy.upstream_h2 import send_h2
from chaoskit.testing.http2_upstream import Http2Upstream
from tests.chaoskit.proxy.test_http2_connection import run

pytestmark = pytest.mark.integration

#: Upstream bodies above the size that always fits.
K = budget.ALWAYS_FITS


async def buffered(
    pool: Http2Pool, up: Http2Upstream, path: str, holding: Holding | None,
    method: str = "GET", body: bytes = b"",
) -> UpstreamResponse:  # fmt: skip
    hold_for_current_task(holding)
    return await send_h2(
        pool, method, "http", "127.0.0.1", up.port, path, [("host", up.address)], body, 2.0,
        streamable=False,
    )  # fmt: skip


def test_an_announced_body_is_reserved_for_the_flow() -> None:
    b = BodyBudget(10 * K)
    h = Holding(b)

    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            resp = await buffered(pool, up, f"/bytes/{6 * K}", h)
            assert (resp.status, len(resp.body)) == (200, 6 * K)

    run(main)
    assert h.held == 6 * K and b.in_use == 6 * K


def test_an_announced_body_that_does_not_fit_is_refused_when_its_head_arrives() -> None:
    b = BodyBudget(10 * K)
    b.reserve(5 * K)

    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            with pytest.raises(ResponseTooLarge) as e:
                await buffered(pool, up, f"/bytes/{6 * K}", Holding(b))
            assert (e.value.status, e.value.limit, e.value.scope) == (200, 10 * K, "budget")

    run(main)
    assert b.in_use == 5 * K


def test_an_unannounced_body_is_reserved_as_it_arrives_until_it_no_longer_fits() -> None:
    b = BodyBudget(2 * K)
    b.reserve(2 * K)  # spent: only what always fits is taken
    h = Holding(b)

    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            with pytest.raises(ResponseTooLarge) as e:  # "chunk <i>\n": 9 to 14 bytes each
                await buffered(pool, up, "/chunks/9000/0", h)
            assert e.value.scope == "budget"
            small = await buffered(pool, up, "/chunks/100/0", Holding(b))
            assert small.status == 200 and small.body.startswith(b"chunk 0\n")

    run(main)
    assert K // 2 < h.held <= K


def test_without_a_flow_only_the_per_response_cap_applies() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            resp = await buffered(pool, up, f"/bytes/{20 * K}", None)
            assert len(resp.body) == 20 * K

    run(main)


def test_the_clients_request_trailers_end_the_request() -> None:
    async def main(pool: Http2Pool) -> None:
        with Http2Upstream() as up:
            http2_trailers.set_current((("x-checksum", "abc"),))
            resp = await buffered(pool, up, "/status/200", None, "POST", b"hello")
            assert resp.status == 200
            assert [r.body for r in up.requests] == [b"hello"]
            assert up.request_trailers == [{"x-checksum": "abc"}]

    run(main)
