"""The dynamic-table-free HPACK encoder: what it writes must decode, with hpack's own decoder
(the one h2 servers use), to exactly the headers given — whatever they are — and must never
leave the decoder with a dynamic table entry to depend on."""

from __future__ import annotations

from hpack import Decoder
from hypothesis import given
from hypothesis import strategies as st

from chaoskit.proxy.hpack_literal import LiteralEncoder, encode_field

_NAME = st.binary(min_size=1, max_size=300).map(lambda b: b.lower())
_FIELD = st.one_of(
    st.tuples(_NAME, st.binary(max_size=300)),
    # names and whole fields from the static table take the other representations
    st.sampled_from(
        [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b"te", b"trailers"),
         (b"content-type", b"application/grpc"), (b"authorization", b"Bearer x"),
         (b"cookie", b"a=b"), (b"accept-encoding", b"gzip, deflate"), (b"x", b"")]
    ),
)  # fmt: skip


@given(st.lists(st.lists(_FIELD, max_size=12), min_size=1, max_size=4))
def test_every_block_decodes_to_its_headers(blocks: list[list[tuple[bytes, bytes]]]) -> None:
    encoder, decoder = LiteralEncoder(), Decoder()
    for headers in blocks:
        assert decoder.decode(encoder.encode(headers), raw=True) == headers
        assert len(decoder.header_table.dynamic_entries) == 0


def test_first_block_sets_the_table_to_zero_and_a_settings_change_says_it_again() -> None:
    encoder = LiteralEncoder()
    first = encoder.encode([(b":method", b"GET")])
    assert first == b"\x20\x82"  # size update 0, then static index 2 (:method GET)
    assert encoder.encode([(b":method", b"GET")]) == b"\x82"
    encoder.header_table_size = 0
    assert encoder.encode([(b":method", b"GET")]) == b"\x20\x82"
    assert encoder.header_table_size == 0
    # a decoder whose own limit is 0 accepts it all
    decoder = Decoder()
    decoder.header_table_size = 0
    assert decoder.decode(first, raw=True) == [(b":method", b"GET")]


def test_representations() -> None:
    # static name (:path is 4), literal value, without indexing
    assert encode_field(b":path", b"/pkg.Svc/Call") == b"\x04\x0d/pkg.Svc/Call"
    # sensitive names are never indexed (0x10 | 15, then the index continues: 23 - 15 = 8)
    assert encode_field(b"authorization", b"t") == b"\x1f\x08\x01t"
    # a new name is a literal too, with a length past the 7-bit prefix (300 = 127 + 173)
    assert encode_field(b"x-long", b"v" * 300) == b"\x00\x06x-long\x7f\xad\x01" + b"v" * 300


def test_mitmproxys_http2_connections_encode_with_it_once_patched() -> None:
    """Patch ``http2.literal_headers``: mitmproxy's connections to HTTP/2 clients (its
    ``BufferedH2Connection``) get the encoder too, and still frame valid header blocks."""
    import h2.config
    from mitmproxy.proxy.layers.http._http_h2 import BufferedH2Connection

    from chaoskit.proxy import patches

    patches.apply()
    server = BufferedH2Connection(h2.config.H2Configuration(client_side=False))
    assert isinstance(server.encoder, LiteralEncoder)
    client = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                            (":authority", "a")], end_stream=True)  # fmt: skip
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(b":status", b"200"), (b"grpc-status", b"0")], end_stream=True)
    (response, *_) = client.receive_data(server.data_to_send())
    assert response.headers == [(b":status", b"200"), (b"grpc-status", b"0")]
