"""A raw HTTP/2 client for the integration tests (the h2 library, which mitmproxy installs):
TLS to an intercepted host through the proxy's ``CONNECT``, then one request, with its body
and trailers, and every h2 event it brings with the time it arrived."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence


def tls_through_connect(
    mesh, alpn: Sequence[str] = ("h2",), host: str = "secure.example.test"
) -> ssl.SSLSocket:
    """A TLS connection to ``host`` through the proxy's ``CONNECT``, offering ``alpn`` in that
    order."""
    raw = socket.create_connection(("127.0.0.1", mesh.port), timeout=10)
    raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=str(mesh.ca_path))
    ctx.set_alpn_protocols(list(alpn))
    return ctx.wrap_socket(raw, server_hostname=host)


def h2_exchange(
    tls: ssl.SSLSocket,
    headers: Sequence[tuple[str, str]],
    body: bytes = b"",
    trailers: Sequence[tuple[str, str]] = (),
    *,
    validate: bool = True,
) -> list[tuple[float, object]]:
    """Send one request on stream 1 (``validate=False``: headers h2 itself would refuse to
    send) and return each h2 event with the time it arrived, until the stream ends, is reset,
    or the connection ends."""
    import h2.config
    import h2.connection
    import h2.events

    config = h2.config.H2Configuration(client_side=True, validate_outbound_headers=validate)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    conn.send_headers(1, list(headers), end_stream=not body and not trailers)
    if body:
        conn.send_data(1, body, end_stream=not trailers)
    if trailers:
        conn.send_headers(1, list(trailers), end_stream=True)
    assert tls.selected_alpn_protocol() == "h2"
    tls.sendall(conn.data_to_send())
    t0, seen = time.monotonic(), []
    ends = (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)
    with tls:
        while True:
            data = tls.recv(65536)
            if not data:
                return seen
            for event in conn.receive_data(data):
                seen.append((time.monotonic() - t0, event))
                if isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                if isinstance(event, ends):
                    return seen
            tls.sendall(conn.data_to_send())


def get(path: str, authority: str = "secure.example.test") -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path)]
