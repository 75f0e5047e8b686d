from urllib.parse import unquote_to_bytes

from hypothesis import given
from hypothesis import strategies as st

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


# -- gRPC conversion: percent-encoded grpc-message, one content-type, never raises ----------

PRINTABLE = set(range(0x20, 0x7F))


def values(reply, name):
    return [v for k, v in reply.headers if k.lower() == name]


def test_grpc_message_is_percent_encoded_as_the_grpc_spec_says():
    """A newline in a directResponse body used to end the header and start another one."""
    body = "line 1\r\nx-injected: yes\n100% € ünï~".encode()
    r = replies.as_grpc(replies.local_reply(503, body))
    assert header(r, "grpc-message") == (
        "line 1%0D%0Ax-injected: yes%0A100%25 %E2%82%AC %C3%BCn%C3%AF~"
    )
    assert unquote_to_bytes(header(r, "grpc-message")) == body
    assert "x-injected" not in {k.lower() for k, _ in r.headers}


def test_non_utf8_and_non_latin1_bodies_give_ascii_headers():
    for body in (b"\xff\xfe\x00bad", "日本語".encode(), "\u20ac".encode("utf-16")):
        r = replies.as_grpc(replies.local_reply(500, body))
        for _, v in r.headers:
            v.encode("ascii")  # never raises: nothing needs latin-1 any more
        assert unquote_to_bytes(header(r, "grpc-message")) == body


def test_an_empty_body_sends_no_grpc_message():
    """Envoy sets ``grpc-message`` only for a non-empty local reply body."""
    r = replies.as_grpc(replies.no_route())
    assert header(r, "grpc-status") == "12" and values(r, "grpc-message") == []


def test_one_content_type_whatever_the_case_of_the_reply_headers():
    """A directResponse brings its own content-type (any case); gRPC replaces it, once."""
    direct = replies.local_reply(
        503, b"down", headers=(("Content-Type", "text/html"), ("CONTENT-LENGTH", "99"),
                               ("Grpc-Status", "0"), ("x-kept", "1")),
    )  # fmt: skip
    assert values(direct, "content-type") == ["text/html"]
    assert values(direct, "content-length") == ["4"]
    r = replies.as_grpc(direct)
    assert values(r, "content-type") == ["application/grpc"]
    assert values(r, "content-length") == ["0"]
    assert values(r, "grpc-status") == ["14"] and values(r, "x-kept") == ["1"]


def test_local_reply_never_raises_on_a_str_body():
    assert replies.local_reply(500, "\udcffx").body == b"\xffx"  # mitmproxy's surrogateescape
    assert replies.local_reply(500, "\ud800x").body == b"?x"


@given(
    body=st.binary(max_size=300),
    status=st.sampled_from([400, 404, 418, 500, 503, 504]),
    content_type=st.sampled_from(["content-type", "Content-Type", "CONTENT-TYPE", None]),
)
def test_as_grpc_is_total_and_its_headers_are_printable_ascii(body, status, content_type):
    extra = ((content_type, "text/plain"),) if content_type else ()
    r = replies.as_grpc(replies.local_reply(status, body, headers=extra))
    assert r.status == 200 and r.body == b""
    assert len(values(r, "content-type")) == 1
    for name in ("grpc-status", "grpc-message", "content-length"):
        assert len(values(r, name)) <= 1
    for k, v in r.headers:
        assert set(k.encode("ascii")) <= PRINTABLE and set(v.encode("ascii")) <= PRINTABLE
    message = values(r, "grpc-message")
    assert unquote_to_bytes(message[0]) == body if body else message == []
