"""ALPN on intercepted TLS: a client that offers ``h2`` speaks HTTP/2, whatever its order.

Istio gives Envoy's TLS-terminating listeners the ALPN list ``h2, http/1.1`` (istio/istio
``pilot/pkg/networking/core/listener.go``, ``BuildListenerTLSContext``: ``util.ALPNHttp``), and
Envoy selects by that, the server's, preference: a client offering both gets ``h2``.
mitmproxy's ``alpn_select_callback`` (``mitmproxy/addons/tlsconfig.py``) walks the client's
list in the client's order: httpx with ``http2=True`` offers ``http/1.1`` first, and got
HTTP/1.1 through chaoskit.

:func:`prefer_h2` wraps mitmproxy's callback (installed by :mod:`chaoskit.proxy.patches`,
``tls.alpn_prefers_h2``) and changes only the free choice: :func:`chooses_h2` says when. Each of
mitmproxy's own rules still comes first, through the original callback:

- a protocol already fixed for the client (``client_alpn``) — among them the secure web proxy's
  forced ``http/1.1`` (mitmproxy does not serve ``CONNECT`` over HTTP/2);
- an upstream connection that exists (``server_alpn``): its protocol is mirrored, and its
  refusal to negotiate (``b""``) too;
- the ``http2`` option off: HTTP/1 only.

chaoskit itself opens no upstream connection for an intercepted client (it sends each request
with its own client, in the protocol of the cluster), so the free choice is the usual case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

H2 = b"h2"

#: pyOpenSSL's ALPN select callback: ``(connection, offered protocols) → the chosen one``.
SelectCallback = Callable[[Any, list[bytes]], Any]


def chooses_h2(app_data: object, offered: Sequence[bytes]) -> bool:
    """Is ``h2`` the answer to a client offering ``offered``, given what mitmproxy stored on
    the connection (its ``AppData``: ``client_alpn``, ``server_alpn``, ``http2``)? Only when
    nothing fixes the protocol already and HTTP/2 is allowed; anything unexpected in
    ``app_data`` (a mitmproxy whose internals moved) leaves the choice to mitmproxy."""
    if not isinstance(app_data, Mapping):
        return False
    return (
        H2 in offered
        and app_data.get("http2") is True
        and "client_alpn" in app_data
        and app_data["client_alpn"] is None
        and "server_alpn" in app_data
        and app_data["server_alpn"] is None
    )


def prefer_h2(original: SelectCallback) -> SelectCallback:
    """mitmproxy's ALPN select callback, choosing ``h2`` when :func:`chooses_h2` says so."""

    def alpn_select_callback(conn: Any, options: list[bytes]) -> Any:
        if chooses_h2(conn.get_app_data(), options):
            return H2
        return original(conn, options)

    return alpn_select_callback
