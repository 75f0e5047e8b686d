"""Which service ports may have a TCP listener, and what the refusal says."""

from __future__ import annotations

import pytest

from chaoskit.proxy.tcp_connection import TcpTarget
from chaoskit.proxy.tcp_listeners import check_target
from tests.chaoskit.routing.helpers import build, doc

MESH = build(
    doc(
        "ServiceEntry",
        "db",
        """
        hosts: [postgres]
        ports: [{number: 5432, name: tcp-pg, protocol: TCP}, {number: 8008, name: http-api,
                 protocol: HTTP}, {number: 9187, name: metrics}]
        resolution: STATIC
        endpoints: [{address: 127.0.0.1}]
        """,
    ),
    doc("WorkloadEntry", "checkout", "labels: {app: checkout}"),
)


@pytest.mark.parametrize(
    "text", ["postgres:5432", "postgres:9187", "checkout@postgres:5432", "postgres.default:5432"]
)
def test_tcp_and_unset_protocols_get_a_listener(text: str) -> None:
    assert check_target(MESH, TcpTarget.parse(text)) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("postgress:5432", 'no service \'postgress\' in the configuration (no ServiceEntry or '
         'Kubernetes Service defines it); did you mean "postgres"?'),
        ("postgres:5433", "postgres has no port 5433 (ports: 5432/TCP, 8008/HTTP, 9187/unset)"),
        ("postgres:8008", "postgres:8008 is not a TCP port (8008/HTTP): HTTP clients reach it "
         "through the proxy URL (HTTP_PROXY)"),
        ("checkot@postgres:5432", "workload 'checkot' is not declared"),
    ],
)  # fmt: skip
def test_refusals_say_why(text: str, problem: str) -> None:
    found = check_target(MESH, TcpTarget.parse(text))
    assert found is not None and found.startswith(problem), found
