"""HTTP/2 with prior knowledge from clients (h2c, RFC 9113 §3.3): how gRPC clients speak to a
plaintext service — inside a ``CONNECT`` tunnel (``grpc.http_proxy``), or straight to the
forward-proxy listener (``curl --http2-prior-knowledge``).

mitmproxy chooses HTTP/2 for a client only from TLS ALPN, and reads a cleartext preface
(``PRI * HTTP/2.0``) as a broken HTTP/1.1 request: the client got ``400`` and nothing was
routed. Envoy's HTTP connection manager detects the preface (``codec_type: AUTO``). This addon
does the same at mitmproxy's layer decision: a client whose first bytes are the preface is
HTTP/2, so mitmproxy's own HTTP/2 server layer parses it and every request goes through the
request path like any other.
"""

from __future__ import annotations

from typing import Any

from mitmproxy.proxy.layers.http import HttpLayer

#: The client connection preface of HTTP/2 (RFC 9113 §3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


#: The preface's first line: enough to tell it from any HTTP/1.1 request.
_FIRST_LINE = len(b"PRI * HTTP/2.0\r\n")


def is_prior_knowledge(data: bytes) -> bool:
    """Do the client's first bytes open an HTTP/2 connection (at least its first line)?"""
    n = min(len(data), len(PREFACE))
    return n >= _FIRST_LINE and data[:n] == PREFACE[:n]


class PriorKnowledge:
    """Marks a cleartext client that starts with the HTTP/2 preface as speaking ``h2``, once
    mitmproxy decided its next layer is HTTP (runs after mitmproxy's ``NextLayer`` addon)."""

    def next_layer(self, nextlayer: Any) -> None:
        layer = nextlayer.layer
        client = nextlayer.context.client
        if (
            isinstance(layer, HttpLayer)
            and not client.tls_established
            and client.alpn is None
            and is_prior_knowledge(nextlayer.data_client())
        ):
            client.alpn = b"h2"
