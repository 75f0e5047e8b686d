"""The handoff of a WebSocket handshake at the upstream client: only the attempt of the task
that started it is kept instead of sent."""

from __future__ import annotations

import asyncio

import pytest

from chaoskit.proxy import websocket_handoff
from chaoskit.proxy.upstream import UpstreamFailure
from chaoskit.proxy.websocket_handoff import HandoffClient, Target
from chaoskit.testing.upstream import free_port

HEADERS = [("host", "chat:8080"), ("x-request-id", "r1")]


async def _send(client: HandoffClient, port: int) -> object:
    return await client.send("GET", "http", "127.0.0.1", port, "/room?a=1", HEADERS, b"", 1.0)


def test_the_handshake_attempt_is_kept_not_sent() -> None:
    async def main() -> None:
        client = HandoffClient()
        port = free_port()  # nothing listens: a real send would fail to connect
        handoff, token = websocket_handoff.start()
        try:
            response = await _send(client, port)
        finally:
            websocket_handoff.end(token)
            await client.close()
        assert response is websocket_handoff.HANDED_OVER
        assert handoff.target == Target("http", "127.0.0.1", port, "/room?a=1", tuple(HEADERS))

    asyncio.run(main())


def test_other_tasks_and_requests_are_sent() -> None:
    """A mirror's copy runs in a task of its own (the context is copied into it): sent as
    always, here to a port where nothing listens."""

    async def main() -> None:
        client = HandoffClient()
        handoff, token = websocket_handoff.start()
        try:
            with pytest.raises(UpstreamFailure):
                await asyncio.ensure_future(_send(client, free_port()))
            assert handoff.target is None
        finally:
            websocket_handoff.end(token)
        with pytest.raises(UpstreamFailure):  # no handoff started at all
            await _send(client, free_port())
        await client.close()

    asyncio.run(main())
