"""What mitmweb's page is sent of chaoskit's listeners: mitmweb's JSON shapes, with names.

The page itself is exercised through a real ``chaoskit proxy --web`` in
tests/integration/test_web_ui.py."""

from __future__ import annotations

from chaoskit.proxy.web_state import options_json, servers_json
from chaoskit.proxy.webui import Shown

FORWARD = Shown("forward proxy", "regular", (("127.0.0.1", 15001),))
GATEWAY = Shown("gateway 8080 (edge)", "gateway", (("::1", 8080),), running=False, error="busy")


def test_a_label_names_the_listener_and_every_address_it_is_bound_to():
    assert FORWARD.label == "forward proxy at 127.0.0.1:15001"
    both = Shown("forward proxy", "regular", (("127.0.0.1", 15001), ("::1", 15001)))
    assert both.label == "forward proxy at 127.0.0.1:15001 and [::1]:15001"
    assert Shown("gateway", "gateway", ()).label == "gateway"  # not bound yet


def test_the_servers_are_keyed_and_described_by_their_names_in_mitmwebs_fields():
    assert servers_json([FORWARD, GATEWAY]) == {
        "forward proxy at 127.0.0.1:15001": {
            "type": "regular", "description": "forward proxy",
            "full_spec": "forward proxy at 127.0.0.1:15001", "is_running": True,
            "last_exception": None, "listen_addrs": [["127.0.0.1", 15001]],
        },
        "gateway 8080 (edge) at [::1]:8080": {
            "type": "gateway", "description": "gateway 8080 (edge)",
            "full_spec": "gateway 8080 (edge) at [::1]:8080", "is_running": False,
            "last_exception": "busy", "listen_addrs": [["::1", 8080]],
        },
    }  # fmt: skip


def test_only_the_mode_options_value_is_named():
    mode = {"type": "sequence of str", "value": ["regular@127.0.0.1:15001"], "help": "reverse:"}
    dumped = {"mode": mode, "listen_port": {"value": 15001}}
    named = options_json(dumped, [FORWARD, GATEWAY])
    assert named["mode"] == {**mode, "value": [FORWARD.label, GATEWAY.label]}
    assert named["listen_port"] is dumped["listen_port"]
    assert dumped["mode"]["value"] == ["regular@127.0.0.1:15001"]  # not changed in place
    assert options_json({"listen_port": {"value": 1}}, [FORWARD]) == {"listen_port": {"value": 1}}
