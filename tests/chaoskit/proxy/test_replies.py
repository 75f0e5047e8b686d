from chaoskit.proxy import replies


def header(reply, name):
    return dict(reply.headers).get(name)


def test_envoy_local_replies():
    r = replies.no_route()
    assert (r.status, r.body, r.flags, r.details) == (404, b"", ("NR",), "route_not_found")
    r = replies.cluster_not_found()
    assert (r.status, r.body, r.flags) == (503, b"", ("NC",))
    r = replies.no_healthy_upstream()
    assert (r.status, r.body, r.flags) == (503, b"no healthy upstream", ("UH",))
    assert header(r, "content-type") == "text/plain"
    r = replies.upstream_timeout()
    assert (r.status, r.body, r.flags, r.details) == (
        504,
        b"upstream request timeout",
        ("UT",),
        "upstream_response_timeout",
    )
    r = replies.fault_abort(555)
    assert (r.status, r.body, r.flags) == (555, b"fault filter abort", ("FI",))
    r = replies.block_all()
    assert (r.status, r.body) == (502, b"")


def test_reset_and_overflow_texts():
    r = replies.upstream_reset("connection failure", "UF", "delayed connect error: 111")
    assert r.body == (
        b"upstream connect error or disconnect/reset before headers. reset reason: "
        b"connection failure, transport failure reason: delayed connect error: 111"
    )
    r = replies.overflow()
    assert r.body.endswith(b"reset reason: overflow")
    assert header(r, "x-envoy-overloaded") == "true" and r.flags == ("UO",)


def test_grpc_requests_get_status_in_headers():
    r = replies.as_grpc(replies.no_healthy_upstream())
    assert r.status == 200 and header(r, "grpc-status") == "14"
    assert header(r, "grpc-message") == "no healthy upstream"
    relayed = replies.Reply(503, (), b"x", local=False)
    assert replies.as_grpc(relayed) is relayed
