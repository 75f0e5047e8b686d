"""What a TCP listener stands for: ``[WORKLOAD@]HOST:PORT``."""

from __future__ import annotations

import pytest

from chaoskit.proxy.tcp_connection import TcpTarget


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("redis:6379", TcpTarget("redis", 6379)),
        ("Redis.cache:6379", TcpTarget("redis.cache", 6379)),
        ("productpage@redis:6379", TcpTarget("redis", 6379, "productpage")),
    ],
)
def test_parse(text: str, target: TcpTarget) -> None:
    assert TcpTarget.parse(text) == target
    assert TcpTarget.parse(str(target)) == target


@pytest.mark.parametrize("text", ["redis", "redis:", ":6379", "redis:0", "redis:70000", "@redis:1"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not \[WORKLOAD@\]HOST:PORT"):
        TcpTarget.parse(text)
