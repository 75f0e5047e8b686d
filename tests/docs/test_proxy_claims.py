"""Claims of docs/proxy.md §5 (hot reload) that no example shows running: the Gateway flags
given at start also place the Gateways a reload adds."""

from __future__ import annotations

import pytest

from chaoskit.proxy.api import Proxy
from chaoskit.testing.upstream import free_port
from tests.builders import service_entry

pytestmark = pytest.mark.integration

BASE = service_entry("web", 9)


def gateway(port: int) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: side}\nspec:\n"
        "  selector: {istio: ingressgateway}\n"
        f'  servers: [{{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: ["*"]}}]\n'
    )


def test_gateway_port_may_name_a_port_only_a_later_reload_declares(tmp_path):
    with Proxy(BASE, gateway_ports={8090: 0}, state_dir=tmp_path) as proxy:
        assert proxy.core.gateway_ports == {}
        proxy.rebase(BASE, gateway(8090))  # what a reload does
        (bound,) = proxy.core.gateway_ports
        assert bound != 8090 and proxy.gateway_url(8090) == f"http://127.0.0.1:{bound}"


def test_the_offset_moves_a_gateway_a_reload_adds(tmp_path):
    target = free_port()
    with Proxy(BASE, gateway_port_offset=target - 8090, state_dir=tmp_path) as proxy:
        proxy.rebase(BASE, gateway(8090))
        assert proxy.gateway_url(8090) == f"http://127.0.0.1:{target}"
