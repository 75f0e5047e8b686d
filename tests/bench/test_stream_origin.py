"""The streaming origin serves what the benchmark relies on: exact downloads on a keep-alive
connection, and event streams that arrive event by event."""

from __future__ import annotations

import asyncio

import pytest

from bench.stream_client import Framing
from bench.stream_origin import StreamOrigin

pytestmark = pytest.mark.integration


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str
) -> tuple[Framing, list[tuple[float, bytes]]]:
    """One request; the framing and the payload pieces with their arrival times."""
    loop = asyncio.get_running_loop()
    writer.write(f"GET {target} HTTP/1.1\r\nHost: origin\r\n\r\n".encode())
    framing = Framing(await reader.readuntil(b"\r\n\r\n"))
    pieces: list[tuple[float, bytes]] = []
    while not framing.done:
        data = await asyncio.wait_for(reader.read(1 << 20), 5)
        assert data, "the origin closed the connection"
        decoded = framing.feed(data)
        pieces.append((loop.time(), decoded if framing.chunked else data))
    return framing, pieces


async def _session(*targets: str) -> list[tuple[Framing, list[tuple[float, bytes]]]]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StreamOrigin, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return [await _get(reader, writer, t) for t in targets]  # one keep-alive connection
    finally:
        writer.close()
        server.close()


def test_downloads_and_the_single_event_have_exactly_their_length_and_keep_the_connection() -> None:
    size = 3 * 256 * 1024 + 17  # several reused-buffer pieces and a partial one
    results = asyncio.run(_session(f"/download/{size}", "/download/5", "/event", "/"))
    (big, pieces), (small, _), (one, one_pieces), (probe, _) = results
    assert (big.status, big.length, big.payload) == (200, size, size)
    body = b"".join(p for _, p in pieces)
    assert body[:256] == bytes(range(256)) and body[-17:] == bytes(range(17))
    assert (small.length, small.payload) == (5, 5)
    assert not one.chunked and b"".join(p for _, p in one_pieces) == b"id: 0\ndata: event 0\n\n"
    assert probe.status == 200


def test_events_arrive_one_by_one_then_the_stream_ends() -> None:
    ((framing, pieces),) = asyncio.run(_session("/sse?events=3&every=60"))
    assert framing.chunked and framing.done
    payload = b"".join(p for _, p in pieces)
    assert payload == b"".join(f"id: {i}\ndata: event {i}\n\n".encode() for i in range(3))
    times = [t for t, p in pieces if p]
    assert times[-1] - times[0] >= 0.1  # three events 60 ms apart, not one burst
