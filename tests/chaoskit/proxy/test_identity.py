"""The caller's identity, from proxy credentials, kept for a tunnel's life."""

from __future__ import annotations

import base64

from mitmproxy.test import tflow

from chaoskit.proxy.identity import CallerIdentity, workload, workload_from_proxy_auth
from chaoskit.sources import validated


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


def test_the_user_name_of_basic_proxy_credentials_is_the_workload() -> None:
    assert workload_from_proxy_auth(basic("productpage-v1")) == "productpage-v1"
    for garbage in (None, "", "Bearer x", "Basic !!!", "Basic " + "é"):
        assert workload_from_proxy_auth(garbage) == ""


def test_a_tunnel_keeps_the_name_given_on_connect_until_its_client_goes() -> None:
    identity = CallerIdentity()
    connect = tflow.tflow()
    connect.request.method = "CONNECT"
    connect.request.headers["proxy-authorization"] = basic("reviews-v2")
    identity.http_connect(connect)
    client_id = connect.client_conn.id
    assert identity.name(client_id, None) == "reviews-v2"  # requests inside carry no credentials
    assert identity.name(client_id, basic("other")) == "other"  # a request's own name wins
    identity.client_disconnected(connect.client_conn)
    assert identity.name(client_id, None) == ""


def test_a_declared_workload_brings_its_namespace_and_labels() -> None:
    mesh = validated(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        "metadata: {name: reviews-v2, namespace: shop}\n"
        "spec: {address: 127.0.0.1, labels: {app: reviews, version: v2}}\n"
    ).mesh
    w = workload(mesh, "reviews-v2")
    assert (w.namespace, w.labels) == ("shop", {"app": "reviews", "version": "v2"})
    assert workload(mesh, "").name == "" and workload(mesh, "unknown").labels == {}
