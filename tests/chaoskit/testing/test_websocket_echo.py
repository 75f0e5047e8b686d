"""The WebSocket echo server, spoken to with wsproto over a real socket."""

from __future__ import annotations

import socket

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request, TextMessage

from chaoskit.testing import EchoServer


def handshake(server: EchoServer, path: str) -> tuple[socket.socket, WSConnection, list[object]]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host="chat", target=path)))
    ws.receive_data(sock.recv(65536))
    return sock, ws, list(ws.events())


def test_it_names_itself_echoes_and_keeps_the_handshake() -> None:
    with EchoServer("echo-a") as server:
        sock, ws, events = handshake(server, "/room")
        with sock:
            (accepted,) = events
            assert isinstance(accepted, AcceptConnection)
            assert (b"x-upstream", b"echo-a") in accepted.extra_headers
            sock.sendall(ws.send(TextMessage("hi")))
            ws.receive_data(sock.recv(65536))
            (echo,) = ws.events()
            assert isinstance(echo, TextMessage) and echo.data == "hi"
        (seen,) = server.handshakes
        assert (seen.path, seen.host) == ("/room", "chat")
        assert seen.headers["upgrade"].lower() == "websocket"  # wsproto 1.2 sends "WebSocket"


def test_status_paths_refuse_the_upgrade() -> None:
    with EchoServer() as server:
        sock, _, events = handshake(server, "/status/403")
        sock.close()
        assert isinstance(events[0], RejectConnection) and events[0].status_code == 403
