"""The dialer on its own: ALPN is offered only when a pool asks for it, and the sockets it
opens are the proxy's own (the HTTP/1.1 pool's tests cover its failures and name lookup)."""

from __future__ import annotations

import asyncio

import pytest

from chaoskit.proxy.dialer import Dialer
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.testing.http2_upstream import Http2Upstream

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("alpn", "chosen"), [((), None), (("h2",), "h2")])
def test_alpn_is_offered_only_when_asked(alpn: tuple[str, ...], chosen: str | None) -> None:
    async def main() -> None:
        own = OwnSockets()
        with Http2Upstream(tls=True) as up:
            key = ("https", "127.0.0.1", up.port)
            transport = await Dialer(own).connect(key, 2.0, asyncio.Protocol, alpn)
            try:
                assert transport.get_extra_info("ssl_object").selected_alpn_protocol() == chosen
                local = transport.get_extra_info("sockname")
                assert own.opened(local, ("127.0.0.1", up.port))
            finally:
                transport.abort()

    asyncio.run(main())
