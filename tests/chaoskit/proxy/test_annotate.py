"""The comment mitmweb shows on a flow: who called, then what chaoskit did with the request."""

from __future__ import annotations

import dataclasses

import pytest
from mitmproxy.test import tflow

from chaoskit.proxy.annotate import FlowAnnotator
from chaoskit.records import Record

ANSWERED = Record(
    1, "id1", 0.0, 0.002, "mesh", "productpage", "GET", "http", "reviews", "/", 503,
    flags=("FI",), route_name="reviews", cluster="outbound|80||reviews.default.svc.cluster.local",
    faults=("abort",),
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "first"),
    [
        ({}, "from productpage; "),
        ({"source": ""}, "from an anonymous caller; "),
        ({"listener": "gateway:8080", "source": ""}, "from an anonymous caller via gateway 8080; "),
    ],
)
def test_the_comment_names_the_caller_first(changes, first):
    flow = tflow.tflow(resp=True)
    FlowAnnotator().annotate(flow, dataclasses.replace(ANSWERED, **changes))
    assert flow.comment == (
        f"{first}route reviews; cluster outbound|80||reviews.default.svc.cluster.local; "
        "flags FI; injected abort"
    )
    assert flow.marked and flow.metadata["chaoskit"]["listener"] == changes.get("listener", "mesh")


def test_a_gateway_flow_shows_the_port_the_client_called():
    flow = tflow.tflow(resp=True)
    flow.request.port = 9  # the reverse mode's placeholder target
    flow.request.headers["Host"] = "shop.example.com"
    flow.client_conn.sockname = ("127.0.0.1", 18080)
    FlowAnnotator().annotate(flow, dataclasses.replace(ANSWERED, listener="gateway:8080"))
    assert (flow.request.port, flow.request.headers["Host"]) == (18080, "shop.example.com")
    mesh = tflow.tflow(resp=True)
    mesh.client_conn.sockname = ("127.0.0.1", 15001)
    FlowAnnotator().annotate(mesh, ANSWERED)
    assert mesh.request.port == 22  # a mesh request keeps its destination
