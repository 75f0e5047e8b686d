"""Each load-balancing policy through the real proxy, against three real endpoints."""

from __future__ import annotations

import collections
import math
import textwrap

import pytest


def rule(lb: str, name: str = "reviews") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}}}\nspec:\n  host: reviews\n  trafficPolicy:\n"
        + textwrap.indent(textwrap.dedent(lb), "    ")
        + "  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
        "  - {name: v3, labels: {version: v3}}\n"
    )


def spread(client, n: int, **kw) -> collections.Counter[str]:
    return collections.Counter(
        client.get("http://reviews:9080/", **kw).json()["upstream"] for _ in range(n)
    )


def test_random_spreads_within_binomial_bounds(mesh, client):
    mesh.apply(rule("loadBalancer: {simple: RANDOM}\n"))
    n = 300
    counts = spread(client, n)
    sigma = math.sqrt(n * (1 / 3) * (2 / 3))  # binomial(300, 1/3): mean 100, sigma 8.2
    assert set(counts) == {"v1", "v2", "v3"}
    assert all(abs(c - 100) <= 4.5 * sigma for c in counts.values()), counts


def test_least_request_is_the_default_and_spreads_sequential_load(mesh, client):
    mesh.apply(rule("connectionPool: {http: {idleTimeout: 1h}}\n"))
    counts = spread(client, 90)
    assert set(counts) == {"v1", "v2", "v3"}  # P2C over equal, idle hosts = random pairs


def test_consistent_hash_on_a_header_is_sticky(mesh, client):
    mesh.apply(rule("loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n"))
    for user in ("alice", "bob", "carol", "dave"):
        assert len(spread(client, 10, headers={"x-user": user})) == 1
    owners = {
        client.get("http://reviews:9080/", headers={"x-user": f"u{i}"}).json()["upstream"]
        for i in range(40)
    }
    assert owners == {"v1", "v2", "v3"}  # keys still spread over hosts


def test_consistent_hash_cookie_is_generated_and_then_sticky(mesh, client):
    mesh.apply(
        rule(
            "loadBalancer:\n  consistentHash:\n    httpCookie: {name: session, ttl: 60s, path: /}\n"
        )
    )
    first = client.get("http://reviews:9080/")
    set_cookie = first.headers["set-cookie"]
    assert (
        set_cookie.startswith("session=")
        and "Max-Age=60" in set_cookie
        and "HttpOnly" in set_cookie
    )
    owner = first.json()["upstream"]
    # the Session stored the cookie, so every later request carries it and lands on the same host
    assert spread(client, 10) == {owner: 10}
    assert "set-cookie" not in client.get("http://reviews:9080/").headers


def test_port_level_settings_replace_the_policy(mesh, client):
    mesh.apply(
        rule("""\
        loadBalancer: {simple: RANDOM}
        portLevelSettings:
        - port: {number: 9080}
          loadBalancer: {simple: ROUND_ROBIN}
        """)
    )
    assert spread(client, 30) == {"v1": 10, "v2": 10, "v3": 10}


def test_subset_policy_overrides_the_top_level(mesh, client):
    mesh.apply(
        rule("loadBalancer: {simple: RANDOM}\n"),
        textwrap.dedent("""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http: [{route: [{destination: {host: reviews, subset: v1}}]}]
        """),
    )
    assert spread(client, 10) == {"v1": 10}


@pytest.mark.parametrize("weights", [(3, 1, 0)])
def test_endpoint_weights_with_round_robin(mesh, client, upstreams, weights):
    eps = "\n".join(
        f"  - {{address: 127.0.0.1, ports: {{http: {upstreams[v].port}}}, labels: {{version: {v}}}, weight: {w}}}"
        for v, w in zip(("v1", "v2"), weights[:2], strict=True)
    )
    mesh.apply(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec:\n"
        "  hosts: [reviews]\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
        f"  resolution: STATIC\n  endpoints:\n{eps}\n"
    )
    assert spread(client, 40) == {"v1": 30, "v2": 10}
