"""The origin server: a minimal, fast HTTP/1.1 keep-alive server on loopback.

``python -m bench.origin PORT [PORT ...]`` listens on every port and answers every request
``200`` with a 25-byte body naming the port (like the nginx ``return 200`` origin of the
mitmproxy notes §4.1). A raw :class:`asyncio.Protocol`, no framework: on one core it serves
well over 10,000 requests/s, far above what any proxy under test reaches, so it never is the
bottleneck of a proxied measurement. It prints ``ready`` once every port accepts connections.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys


def _response(port: int, close: bool) -> bytes:
    body = f"hello from upstream {port}\n".encode()[:25].ljust(25, b"\n")
    head = (
        "HTTP/1.1 200 OK\r\n"
        "content-type: text/plain\r\n"
        f"content-length: {len(body)}\r\n" + ("connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + body


class OriginProtocol(asyncio.Protocol):
    """Answers each complete request (headers plus a ``content-length`` body) at once. A body
    is counted and dropped as it arrives, never buffered (the large-body scenario sends
    hundreds of megabytes: only the proxy's memory is under test)."""

    def __init__(self, port: int) -> None:
        self.keep = _response(port, close=False)
        self.close = _response(port, close=True)
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        #: body bytes of the current request still to come (and be dropped)
        self.skip = 0
        #: the answer owed once they have come
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.skip:
            dropped = min(self.skip, len(data))
            self.skip -= dropped
            data = data[dropped:]
            if self.skip:
                return
            answer, self.pending = self.pending, b""
            self.transport.write(answer)
            if answer is self.close:
                self.transport.close()
                return
        self.buffer += data
        out = bytearray()
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(self.buffer[:end]).lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                value = head[marker + 15 : line_end if line_end >= 0 else len(head)]
                length = int(value.strip() or 0)
            total = end + 4 + length
            if len(self.buffer) < total:
                # The rest of this body is dropped as it comes; answered when it has.
                self.skip = total - len(self.buffer)
                self.buffer.clear()
                self.pending = self.close if b"connection: close" in head else self.keep
                break
            del self.buffer[:total]
            if b"connection: close" in head:
                out += self.close
                self.transport.write(bytes(out))
                self.transport.close()
                return
            out += self.keep
        if out:
            self.transport.write(bytes(out))


async def serve(ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for port in ports:

        def factory(p: int = port) -> OriginProtocol:
            return OriginProtocol(p)

        servers.append(
            await loop.create_server(
                factory,
                "127.0.0.1",
                port,
                backlog=4096,
                reuse_address=True,
            )
        )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str]) -> int:
    ports = [int(p) for p in argv]
    if not ports:
        print("usage: python -m bench.origin PORT [PORT ...]", file=sys.stderr)
        return 2
    asyncio.run(serve(ports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
