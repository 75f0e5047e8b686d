"""The local addresses of this proxy's own outgoing connections, to recognise itself as a client.

Loop detection by destination address (:mod:`chaoskit.proxy.addresses`) cannot see every path
back into the proxy: a name that resolves to it, a tunnel through mitmproxy's own connection.
The kernel can: a connection that arrives from ``127.0.0.1:54321`` at ``127.0.0.1:15001`` while
one of our own sockets goes from ``127.0.0.1:54321`` to ``127.0.0.1:15001`` came from this
proxy. That is known whatever the client sent, so it bounds loops that no header or address
check caught. Both ends are compared: Linux hands the same ephemeral port to connections to
different destinations, so the local address alone would mistake a client for ourselves.

Sockets are registered when they are created (aiohttp's ``socket_factory``) or once mitmproxy
has connected them; their local address is read lazily, after ``connect()``, and forgotten when
the socket is closed or collected.
"""

from __future__ import annotations

import socket
import weakref
from typing import Any

from chaoskit.proxy.addresses import canonical_ip

Address = tuple[str, int]
#: (local address, remote address) of one TCP connection
Pair = tuple[Address, Address]


def _key(address: Any) -> Address | None:
    """``(host, port)`` with the host in canonical form (``::ffff:127.0.0.1`` → ``127.0.0.1``)."""
    try:
        host, port = str(address[0]), int(address[1])
    except (TypeError, ValueError, IndexError):
        return None
    ip = canonical_ip(host)
    return (str(ip) if ip is not None else host, port)


class OwnSockets:
    """Local addresses of the proxy's outgoing connections. Used on the proxy loop only."""

    def __init__(self) -> None:
        #: created, maybe not yet connected: local address unknown
        self._pending: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._by_pair: dict[Pair, weakref.ref[socket.socket]] = {}
        #: both ends of connections mitmproxy opened itself (tunnels), by connection id
        self._named: dict[str, Pair] = {}
        #: the answer of :meth:`opened_connection`, per client connection while it lives
        self._decided: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

    def socket_factory(self, addr_info: Any) -> socket.socket:
        """aiohttp's ``TCPConnector(socket_factory=...)``: create and remember the socket."""
        family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
        sock = socket.socket(family=family, type=type_, proto=proto)
        self._pending.add(sock)
        return sock

    def add_connection(self, connection_id: str, sockname: Any, peername: Any) -> None:
        """A connection mitmproxy opened (a ``CONNECT`` tunnel's server side)."""
        local, remote = _key(sockname), _key(peername)
        if local is not None and remote is not None:
            self._named[connection_id] = (local, remote)

    def remove_connection(self, connection_id: str) -> None:
        self._named.pop(connection_id, None)

    def _settle(self) -> None:
        """Move connected sockets from pending to the address table."""
        for sock in list(self._pending):
            try:
                local, remote = _key(sock.getsockname()), _key(sock.getpeername())
            except OSError:  # not connected yet, or closed
                if sock.fileno() == -1:
                    self._pending.discard(sock)
                continue
            if local is None or remote is None:
                continue
            self._pending.discard(sock)
            pair = (local, remote)
            self._by_pair[pair] = weakref.ref(sock, self._forget(pair))

    def _forget(self, pair: Pair) -> Any:
        def callback(ref: weakref.ref[socket.socket]) -> None:
            if self._by_pair.get(pair) is ref:
                del self._by_pair[pair]

        return callback

    def opened(self, peer: Any, local: Any) -> bool:
        """Did the connection that arrived from ``peer`` at our address ``local`` come from
        this proxy — is one of its own sockets that connection's other end?"""
        theirs, ours = _key(peer), _key(local)
        if theirs is None or ours is None:
            return False
        if self._pending:
            self._settle()
        pair = (theirs, ours)
        ref = self._by_pair.get(pair)
        if ref is not None:
            sock = ref()
            if sock is not None and sock.fileno() != -1:
                return True
            self._by_pair.pop(pair, None)
        return pair in self._named.values() if self._named else False

    def opened_connection(self, client: Any) -> bool:
        """:meth:`opened` for a client connection (mitmproxy's ``Client``), decided on its first
        request: a connection's two ends never change, and a socket of ours is known here
        before it connects (a tunnel's, before the tunnel carries a byte)."""
        known = self._decided.get(client)
        if known is None:
            peer, local = client.peername, client.sockname
            known = bool(peer and local) and self.opened(peer, local)
            self._decided[client] = known
        return known

    def __len__(self) -> int:
        return len(self._by_pair) + len(self._pending) + len(self._named)
