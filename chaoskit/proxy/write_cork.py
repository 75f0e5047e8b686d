"""One write per connection per turn of the event loop, instead of one per frame.

mitmproxy writes every ``SendData`` its layers produce at once: a response's head and body, an
HTTP/2 response's HEADERS, DATA and trailing HEADERS, each a ``send()`` system call of its own.
On the machines chaoskit runs on (containers, sandboxes, CI runners), a system call costs tens
of microseconds; a gRPC call through the proxy made five such writes toward its client. A corked
writer gathers what one callback writes and sends it in one call when the callback is done
(``loop.call_soon``): the bytes and their order are the same, only later by the rest of the
running callback. Anything that must see the bytes in the transport first — ``drain`` (back
pressure), ``close``, ``write_eof`` — sends what is gathered before it does its own work. TCP's
``TCP_NODELAY`` stays as it is: this is the gathering Nagle's algorithm would do, without its
wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cork"]

_CORKED = "_chaoskit_corked"


def cork(writer: Any) -> None:
    """Gather ``writer``'s writes per event-loop turn (an ``asyncio.StreamWriter``; anything
    else, e.g. mitmproxy's UDP streams, is left as it is). Idempotent."""
    if not isinstance(writer, asyncio.StreamWriter) or getattr(writer, _CORKED, False):
        return
    loop = asyncio.get_running_loop()
    pending: list[bytes] = []
    write, close, write_eof, drain = writer.write, writer.close, writer.write_eof, writer.drain

    def flush() -> None:
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not writer.is_closing():
            write(data)

    def corked_write(data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not pending:
            loop.call_soon(flush)
        pending.append(bytes(data))

    def corked_close() -> None:
        flush()
        close()

    def corked_write_eof() -> None:
        flush()
        write_eof()

    async def corked_drain() -> None:
        flush()
        await drain()

    writer.write = corked_write  # type: ignore[method-assign]
    writer.close = corked_close  # type: ignore[method-assign]
    writer.write_eof = corked_write_eof  # type: ignore[method-assign]
    writer.drain = corked_drain  # type: ignore[method-assign]
    setattr(writer, _CORKED, True)
