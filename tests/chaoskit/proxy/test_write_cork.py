"""Corked writers (chaoskit/proxy/write_cork.py) on real loopback sockets: what one callback
writes leaves in one transport write, in order, and nothing is lost at close, EOF or drain."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from chaoskit.proxy.write_cork import cork

Body = Callable[[asyncio.StreamWriter, list[bytes]], Awaitable[None]]


def exchange(body: Body) -> tuple[bytes, list[bytes]]:
    """Run ``body`` on a corked client writer; what the server read, and each transport write."""

    async def main() -> tuple[bytes, list[bytes]]:
        got = asyncio.get_running_loop().create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(await reader.read())
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        transport: Any = writer.transport
        writes: list[bytes] = []
        real = transport.write
        transport.write = lambda data: (writes.append(bytes(data)), real(data))[1]
        cork(writer)
        cork(writer)  # idempotent
        await body(writer, writes)
        data = await asyncio.wait_for(got, 5)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data, writes

    return asyncio.run(main())


def test_writes_of_one_callback_leave_together_in_order() -> None:
    async def body(writer: asyncio.StreamWriter, writes: list[bytes]) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writer.write(bytearray(b"body"))
        writer.write(b"")
        assert writes == []  # not yet: the callback is still running
        await asyncio.sleep(0)
        writer.write(b"!")
        writer.write_eof()  # sends the gathered byte first

    data, writes = exchange(body)
    assert data == b"HTTP/1.1 200 OK\r\n\r\nbody!"
    assert writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"!"]


def test_close_and_drain_send_what_is_gathered_first() -> None:
    async def body(writer: asyncio.StreamWriter, writes: list[bytes]) -> None:
        writer.write(b"a")
        await writer.drain()
        assert writes == [b"a"]
        writer.write(b"b")
        writer.close()

    data, writes = exchange(body)
    assert (data, writes) == (b"ab", [b"a", b"b"])


def test_only_stream_writers_are_corked() -> None:
    class Other:
        def write(self, data: bytes) -> None: ...

    other = Other()
    write = other.write

    async def main() -> None:
        cork(other)

    asyncio.run(main())
    assert other.write == write
