"""The proxy recognises a connection that comes from one of its own sockets — by both ends."""

from __future__ import annotations

import gc
import socket
import warnings

from chaoskit.proxy.own_sockets import OwnSockets


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_connection_from_our_own_socket_is_recognised_until_it_closes():
    own = OwnSockets()
    with _listener() as server:
        here = server.getsockname()
        info = socket.getaddrinfo(*here, type=socket.SOCK_STREAM)[0]
        ours = own.socket_factory(info)
        assert not own.opened(("127.0.0.1", 1), here)  # not connected yet: nothing known
        ours.connect(here)
        accepted, peer = server.accept()
        with socket.create_connection(here):
            other, other_peer = server.accept()
            assert own.opened(peer, here)
            assert own.opened(("::ffff:127.0.0.1", peer[1]), here)  # however it is spelled
            assert not own.opened(other_peer, here)  # somebody else's connection
            other.close()
        ours.close()
        accepted.close()
        assert not own.opened(peer, here)  # closed: its port may belong to someone else now
        del ours
        with warnings.catch_warnings():  # other tests' garbage may be finalised here too
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        assert len(own) == 0


def test_the_same_local_port_towards_another_destination_is_not_us():
    # Linux gives one ephemeral port to connections to different destinations: a client that
    # reaches the proxy from 127.0.0.1:P while our upstream socket also uses 127.0.0.1:P (to
    # somewhere else) is not the proxy talking to itself.
    own = OwnSockets()
    with _listener() as upstream, _listener() as proxy_listener:
        ours = own.socket_factory(
            socket.getaddrinfo(*upstream.getsockname(), type=socket.SOCK_STREAM)[0]
        )
        ours.connect(upstream.getsockname())
        local = ours.getsockname()
        assert own.opened(local, upstream.getsockname())
        assert not own.opened(local, proxy_listener.getsockname())
        ours.close()


def test_connections_mitmproxy_opened_are_known_by_id():
    own = OwnSockets()
    own.add_connection("c1", ("127.0.0.1", 40000), ("127.0.0.1", 15001))
    assert own.opened(("127.0.0.1", 40000), ("127.0.0.1", 15001))
    assert not own.opened(("127.0.0.1", 40000), ("127.0.0.1", 15002))
    own.remove_connection("c1")
    assert not own.opened(("127.0.0.1", 40000), ("127.0.0.1", 15001))
    assert not own.opened(None, None) and not own.opened(("x",), ("127.0.0.1", 1))


class FakeClient:
    """The two ends of a client connection, as mitmproxy's ``Client`` has them."""

    def __init__(self, peername: tuple[str, int], sockname: tuple[str, int]) -> None:
        self.peername, self.sockname = peername, sockname


def test_a_client_connection_is_judged_once_on_its_first_request():
    own = OwnSockets()
    with _listener() as server:
        here = server.getsockname()
        ours = own.socket_factory(socket.getaddrinfo(*here, type=socket.SOCK_STREAM)[0])
        ours.connect(here)
        accepted, peer = server.accept()
        client = FakeClient(peer, here)
        stranger = FakeClient(("127.0.0.1", 1), here)
        assert own.opened_connection(client) and not own.opened_connection(stranger)
        own._by_pair.clear()  # what the tables say now no longer matters for these two
        own._pending.clear()
        assert own.opened_connection(client) and not own.opened_connection(stranger)
        assert not own.opened_connection(FakeClient(peer, here))  # another connection: asked anew
        del client, stranger
        gc.collect()
        assert len(own._decided) == 0  # forgotten with the connection
        ours.close()
        accepted.close()
