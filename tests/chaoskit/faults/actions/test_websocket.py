"""``webSocket``: its YAML, its messages, which attempts it targets, and how faults combine."""

from __future__ import annotations

import pytest

from chaoskit.config.loader import load_text
from chaoskit.faults import FaultStates, plan_attempt
from chaoskit.faults.actions.websocket import (
    FaultWebSocket,
    SocketClose,
    is_websocket_upgrade,
    socket_faults,
)
from chaoskit.faults.targeting import targets
from tests.chaoskit.faults.helpers import PAYMENTS, doc, fault, faults, host, request, rng

UPGRADE = {"upgrade": "websocket", "connection": "keep-alive, Upgrade"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("webSocket: {messageDelay: 200ms}", FaultWebSocket(0.2)),
        (
            "webSocket: {close: {afterMessages: 0}}",
            FaultWebSocket(0.0, SocketClose(after_messages=0)),
        ),
        (
            "webSocket: {messageDelay: 1s, close: {after: 5s, afterMessages: 3, code: 4000}}",
            FaultWebSocket(1.0, SocketClose(3, 5.0, 4000)),
        ),
        (
            "webSocket: {close: {after: 2s, code: 1011}}",
            FaultWebSocket(0.0, SocketClose(None, 2.0, 1011)),
        ),
    ],
)
def test_parse(spec: str, expected: FaultWebSocket) -> None:
    f = fault(f"host: payments\n{spec}\n")
    assert f.websocket == expected
    assert f.actions == ("webSocket",)


def test_combines_with_a_handshake_delay_only() -> None:
    f = fault("host: payments\ndelay: {fixedDelay: 1s}\nwebSocket: {messageDelay: 10ms}\n")
    assert f.actions == ("delay", "webSocket")


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        ("webSocket: {}", "spec.webSocket", "webSocket needs messageDelay and/or close"),
        (
            "webSocket: {close: {}}",
            "spec.webSocket.close",
            "close needs afterMessages and/or after",
        ),
        (
            "webSocket: {close: {afterMessages: -1}}",
            "spec.webSocket.close.afterMessages",
            "less than 0",
        ),
        ("webSocket: {close: {after: 0s}}", "spec.webSocket.close.after", "1ms"),
        (
            "webSocket: {close: {after: 1s, code: 1006}}",
            "spec.webSocket.close.code",
            "1006 is not a close code an endpoint may send",
        ),
        ("webSocket: {messageDelay: fast}", "spec.webSocket.messageDelay", "fast"),
        ("webSocket: {messageDelay: 1s, drop: 3}", "spec.webSocket.drop", 'unknown field "drop"'),
        (
            "abort: {httpStatus: 503}\nwebSocket: {messageDelay: 1s}",
            "spec.webSocket",
            "webSocket cannot be combined with abort: an aborted handshake opens no socket",
        ),
    ],
)
def test_invalid(spec: str, path: str, fragment: str) -> None:
    result = load_text(doc(f"host: payments\n{spec}\n"), "faults.yaml")
    errors = [(i.path, i.message, str(i)) for i in result.issues.errors]
    assert len(errors) == 1, errors
    (found_path, message, text) = errors[0]
    assert found_path == path and fragment in message, errors
    assert text.startswith("faults.yaml:"), text  # FILE:LINE: Kind/name: path: message


def test_upgrade_detection() -> None:
    assert is_websocket_upgrade(UPGRADE)
    assert is_websocket_upgrade({"upgrade": "WebSocket", "connection": "Upgrade"})
    assert not is_websocket_upgrade({"upgrade": "websocket"})  # no Connection: upgrade
    assert not is_websocket_upgrade({"upgrade": "h2c", "connection": "Upgrade"})
    assert not is_websocket_upgrade({})


def test_a_socket_fault_targets_upgrades_only() -> None:
    """Plain requests to the host are not counted by its firstN and never touched."""
    (f,) = faults(doc("host: payments\nwebSocket: {close: {afterMessages: 1}}\nfirstN: 1\n"))
    states = FaultStates()
    states.apply([f], 0.0)

    def plan(headers: dict[str, str]) -> tuple[str, ...]:
        return plan_attempt(
            [f], states, host_fqdn=PAYMENTS, subset=None, endpoint=host(),
            request=request(headers=headers), now=0.0, rng_for=lambda ref: rng(),
        ).faults  # fmt: skip

    assert not targets(f, host_fqdn=PAYMENTS, subset=None, endpoint=host(), request=request())
    assert plan({}) == ()
    assert plan(UPGRADE) == ("UpstreamFault/default/flaky:webSocket",)
    assert plan(UPGRADE) == ()  # firstN: 1 was spent by the first upgrade, not the plain GET


def test_body_actions_do_not_apply_to_a_handshake() -> None:
    (f,) = faults(doc("host: payments\ntruncateBody: {afterBytes: 1}\n"))
    states = FaultStates()
    states.apply([f], 0.0)
    plan = plan_attempt(
        [f], states, host_fqdn=PAYMENTS, subset=None, endpoint=host(),
        request=request(headers=UPGRADE), now=0.0, rng_for=lambda ref: rng(),
    )  # fmt: skip
    assert plan.faults == () and plan.truncate == () and not plan.acts_on_body


def test_socket_faults_from_the_attempt_names_combine_in_order() -> None:
    a, b, c = faults(
        doc("host: payments\nwebSocket: {messageDelay: 100ms}\n", name="a"),
        doc(
            "host: payments\nwebSocket: {messageDelay: 50ms, close: {afterMessages: 2}}\n", name="b"
        ),
        doc("host: payments\nwebSocket: {close: {after: 1s, code: 1001}}\n", name="c"),
    )
    names = (
        "UpstreamFault/default/a:webSocket",
        "UpstreamFault/default/x:delay",
        "UpstreamFault/default/b:webSocket",
        "UpstreamFault/default/c:webSocket",
    )
    combined = socket_faults(names, [a, b, c])
    assert combined == FaultWebSocket(pytest.approx(0.15), SocketClose(after_messages=2))
    assert socket_faults(names[:2], [a, b, c]) == FaultWebSocket(0.1)
    assert socket_faults(("UpstreamFault/default/gone:webSocket",), [a]) is None
