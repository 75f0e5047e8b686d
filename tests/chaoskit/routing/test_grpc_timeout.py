"""A gRPC call's ``grpc-timeout`` against the route timeout: Envoy's ``FilterUtility::finalTimeout``
and ``setTimeoutHeaders`` (envoy ``source/common/router/router.cc``) with ``max_grpc_timeout`` =
the route timeout, as istio/istio ``pilot/pkg/networking/core/route/route.go`` ``setTimeout``
configures it; the header parsed as envoy ``source/common/grpc/common.cc`` ``getGrpcTimeout``."""

from __future__ import annotations

import pytest

from chaoskit.routing.grpc_timeout import (
    CallTimeout,
    final_timeout,
    for_attempt,
    format_ms,
    is_grpc,
    parse_ms,
    upstream_header,
    with_header,
)

GRPC = "application/grpc"


@pytest.mark.parametrize(
    ("content_type", "grpc"),
    [
        ("application/grpc", True),
        ("application/grpc+proto", True),
        ("application/grpc+json", True),
        ("application/grpc-web", False),  # grpc-web is not gRPC to Envoy's router
        ("application/grpc-web+proto", False),
        ("application/grpcx", False),
        ("application/json", False),
        ("Application/gRPC", False),  # Envoy compares the bytes
        (None, False),
    ],
)
def test_is_grpc(content_type: str | None, grpc: bool) -> None:
    assert is_grpc(content_type) is grpc


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("1H", 3_600_000),
        ("2M", 120_000),
        ("5S", 5_000),
        ("300m", 300),
        ("299996u", 300),  # what grpcio sends for timeout=0.3: rounded up to a millisecond
        ("1000u", 1),
        ("1001u", 2),
        ("1n", 1),
        ("1000000n", 1),
        ("0m", 0),
        ("99999999S", 99_999_999_000),  # 8 digits: the largest value
        ("00000005S", 5_000),
        ("000000005S", 5_000),  # 9 characters, but the number fits: Envoy takes it
        (" 5S", 5_000),  # absl::SimpleAtoi: blanks around the number, a sign
        ("5 S", 5_000),
        ("+5S", 5_000),
        ("-0S", 0),
    ],
)
def test_parse_ms(value: str, ms: int) -> None:
    assert parse_ms(value) == ms


@pytest.mark.parametrize(
    "value",
    ["", "S", "5", "5s", "5x", "100000000S", "-5S", "5.5S", "1_000m", "five S", "0x10m", "٥S"],
)
def test_a_malformed_value_is_none(value: str) -> None:
    assert parse_ms(value) is None


@pytest.mark.parametrize(
    ("route", "header", "timeout"),
    [
        (None, "300m", 0.3),  # no route timeout: the call's own deadline
        (10.0, "300m", 0.3),  # shorter than the route's: the call's
        (0.2, "5S", 0.2),  # longer than the route's: capped
        (0.3, "300m", 0.3),
        (15.0, None, 15.0),  # no header: the route timeout, as for any request
        (None, None, None),
        (15.0, "0S", 15.0),  # 0 is "no deadline" to Envoy: the route's applies
        (None, "0S", None),
        (15.0, "soon", 15.0),  # malformed: ignored
        (None, "soon", None),
        (None, "299996u", 0.3),
        (None, "1H", 3600.0),
    ],
)
def test_final_timeout_of_a_grpc_call(
    route: float | None, header: str | None, timeout: float | None
) -> None:
    assert final_timeout(route, GRPC, header).timeout == timeout


@pytest.mark.parametrize("content_type", ["application/json", "application/grpc-web", None])
def test_only_grpc_requests_take_the_header(content_type: str | None) -> None:
    assert final_timeout(15.0, content_type, "300m") == CallTimeout(15.0)
    assert final_timeout(None, content_type, "300m") == CallTimeout(None)


@pytest.mark.parametrize(
    ("route", "header", "note"),
    [
        (10.0, "300m", "grpc-timeout 300m set the timeout to 0.3s (the route allows 10s)"),
        (None, "300m", "grpc-timeout 300m set the timeout to 0.3s (the route has none)"),
        (0.2, "5S", "grpc-timeout 5S capped by the route timeout of 0.2s"),
        (15.0, "0S", "grpc-timeout 0 means no deadline: the route timeout applies"),
        (15.0, "5 seconds", "grpc-timeout '5 seconds' is malformed: ignored, as Envoy does"),
        (15.0, None, ""),
    ],
)
def test_the_record_says_what_set_the_timeout(
    route: float | None, header: str | None, note: str
) -> None:
    assert final_timeout(route, GRPC, header).note == note


@pytest.mark.parametrize(
    ("ms", "value"),
    [
        (300, "300m"),
        (1, "1m"),
        (99_999_999, "99999999m"),
        (100_000_000, "100000S"),  # past 8 digits: seconds, truncated
        (100_000_999, "100000S"),
        (99_999_999_000, "99999999S"),
        (100_000_000_000, "1666666M"),
        (6_000_000_000_000, "1666666H"),
        (10**20, "99999999H"),  # no larger unit: clipped
    ],
)
def test_format_ms(ms: int, value: str) -> None:
    assert format_ms(ms) == value


@pytest.mark.parametrize(
    ("timeout", "per_try", "elapsed", "value"),
    [
        (0.3, None, 0.0, "300m"),
        (10.0, None, 0.0, "10000m"),  # a call without grpc-timeout is told the route's
        (None, None, 0.0, None),  # no timeout at all: the header is left as it came
        (None, None, 5.0, None),
        (None, 0.25, 0.0, "250m"),  # the per-try timeout alone
        (None, 0.25, 3.0, "250m"),  # with no route timeout nothing is used up
        (10.0, 0.25, 0.0, "250m"),  # each try's own deadline
        (10.0, 0.25, 9.9, "100m"),  # never more than what the route has left
        (10.0, 10.0, 0.0, "10000m"),  # a per-try timeout not shorter than the route's: ignored
        (10.0, 12.0, 0.0, "10000m"),
        (1.0, None, 0.4, "600m"),  # a retry 400 ms into the request
        (1.0, None, 0.4009, "600m"),  # elapsed in whole milliseconds, truncated as Envoy's
        (1.0, None, 1.0, "1m"),  # out of time: 1 ms, never 0 (which is "no deadline")
        (1.0, None, 2.0, "1m"),
    ],
)
def test_upstream_header(
    timeout: float | None, per_try: float | None, elapsed: float, value: str | None
) -> None:
    assert upstream_header(timeout, per_try, elapsed) == value


def test_the_header_is_rewritten_in_its_place() -> None:
    sent = [("te", "trailers"), ("grpc-timeout", "5S"), ("content-type", GRPC)]
    assert with_header(sent, "200m") == [
        ("te", "trailers"), ("grpc-timeout", "200m"), ("content-type", GRPC),
    ]  # fmt: skip
    twice = [("Grpc-Timeout", "5S"), ("content-type", GRPC), ("grpc-timeout", "1S")]
    assert with_header(twice, "200m") == [("grpc-timeout", "200m"), ("content-type", GRPC)]
    assert with_header([("content-type", GRPC)], "200m") == [
        ("content-type", GRPC), ("grpc-timeout", "200m"),
    ]  # fmt: skip


def test_for_attempt_keeps_the_headers_without_a_timeout() -> None:
    sent = [("content-type", GRPC), ("grpc-timeout", "5S")]
    assert for_attempt(sent, None, None, 0.0) is sent
    assert for_attempt(sent, 0.2, None, 0.05) == [("content-type", GRPC), ("grpc-timeout", "150m")]
