"""Ending a WebSocket from outside mitmproxy's WebSocket layer: an UpstreamFault's close.

mitmproxy's WebSocket layer has no way for an addon to close a socket (``flow.kill()`` is
ignored once the 101 has been sent), so chaoskit closes both of the flow's connections itself,
through mitmproxy's connection table (``Proxyserver.connections``, ``ConnectionHandler.
transports``), the way its own idle timeout does and as :func:`chaoskit.proxy.codec_limits.
close_client` does. The layer then sees both connections end and reports ``websocket_end``.

- **dropped** (``code`` ``None``): both TCP connections are closed without a close frame — what
  a crashed upstream looks like; a client reports close code 1006 (abnormal closure);
- **closed** (``code`` given): a close frame with that code goes to each side first (masked
  towards the upstream, as a client's must be, RFC 6455 §5.3), then the connections close.
"""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import http
from wsproto.frame_protocol import FrameProtocol

logger = logging.getLogger("chaoskit")


def close_frame(code: int, *, masked: bool) -> bytes:
    """A close frame with ``code`` and no reason; ``masked`` as a client sends it."""
    return bytes(FrameProtocol(client=masked, extensions=[]).close(code))


def cut(flow: http.HTTPFlow, code: int | None) -> bool:
    """Drop (``code`` ``None``) or close with ``code`` both connections of a WebSocket flow.
    False when they are gone already (nothing was done)."""
    try:
        from mitmproxy import ctx  # noqa: PLC0415

        handler: Any = ctx.master.addons.get("proxyserver").connections[flow.client_conn.id]
        ends = [(handler.transports.get(flow.client_conn), False)]
        if flow.server_conn is not None:
            ends.append((handler.transports.get(flow.server_conn), True))
    except (AttributeError, KeyError):
        return False
    done = False
    for io, towards_upstream in ends:
        if io is None or io.writer is None or io.handler is None or io.writer.is_closing():
            continue
        if code is not None:
            io.writer.write(close_frame(code, masked=towards_upstream))
        # Closed now, not when the handler gets to it: the layer answers a closed connection
        # with a close frame to the other side, which must find that side closed already.
        io.writer.close()
        io.handler.cancel("chaoskit: WebSocket ended by an UpstreamFault")
        done = True
    return done
