"""The table of every change chaoskit makes to mitmproxy's internals: what each patch
replaces, why, and the fingerprints of the mitmproxy (and h11) code it was checked against.
How they are verified and applied is :mod:`chaoskit.proxy.patches`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any

# Where each fingerprint was seen (the releases tests/chaoskit/proxy/test_patches.py covers).
_M11 = "mitmproxy 11.0.2"
_M12 = "mitmproxy 12.0.0-12.3.1"
_M11_12 = "mitmproxy 11.0.2, 12.0.0-12.3.1"
#: the web UI's code (mitmproxy/tools/web/) was checked in these releases (12.0.0's differs)
_W12 = "mitmproxy 12.1.0, 12.2.0, 12.3.1"
_W12_2 = "mitmproxy 12.2.0, 12.3.1"
_H14 = "h11 0.14.0-0.15.0"
_H16 = "h11 0.16.0"


class Scope(enum.Enum):
    #: applied to mitmproxy's classes by :func:`apply`, once per process
    PROCESS = "process"
    #: applied only by ``apply(own_process=True)``: the process is chaoskit's (the CLI), not a
    #: host's (the pytest plugin, ``mitmdump -s``)
    OWN_PROCESS = "own process"
    #: applied to one Master by ``apply(master)``, before any addon is added
    MASTER = "master"
    #: applied to one mitmweb Master (``chaoskit proxy --web``) by ``apply(web_master=...)``
    WEB = "web UI"

    @property
    def per_master(self) -> bool:
        """Installed on one Master (``make`` returns an installer), not on mitmproxy's code."""
        return self in (Scope.MASTER, Scope.WEB)


class Status(enum.Enum):
    APPLIED = "applied"
    #: applied although its code's fingerprint is unknown (``CHAOSKIT_UNVERIFIED_PATCHES``)
    UNVERIFIED = "applied, unverified"
    #: not applied: the code it replaces or relies on has an unknown fingerprint
    REFUSED = "refused: unknown mitmproxy code"
    #: not applied: what it replaces does not exist in this mitmproxy
    MISSING = "refused: not in this mitmproxy"
    #: nothing to replace, and nothing lost (e.g. type checks under ``python -O``)
    NOT_NEEDED = "not needed"


@dataclasses.dataclass(frozen=True)
class Code:
    """A function of mitmproxy (or h11) and the fingerprints of its known versions."""

    #: ``"module:Qualified.name"``
    target: str
    #: fingerprint → the releases it was seen in
    known: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Patch:
    """One change to mitmproxy. ``replaces`` is the attribute set (its fingerprint guards the
    patch, with those of ``relies_on``); ``make`` returns, for a process patch, a function
    from the original to its replacement, and for a master patch, one that installs on a
    Master."""

    name: str
    replaces: Code
    why: str
    make: Callable[[], Callable[[Any], Any]]
    scope: Scope = Scope.PROCESS
    relies_on: tuple[Code, ...] = ()
    #: a missing target is :attr:`Status.NOT_NEEDED`, not an error
    missing_ok: bool = False


def _guard(name: str) -> Callable[[], Callable[[Any], Any]]:
    def make() -> Callable[[Any], Any]:
        from chaoskit.proxy import guards  # noqa: PLC0415 - mitmproxy only when applied

        return guards.wrappers()[name]

    return make


def _budget(name: str) -> Callable[[], Callable[[Any], Any]]:
    def make() -> Callable[[Any], Any]:
        from chaoskit.proxy import budget_streams  # noqa: PLC0415

        return budget_streams.wrappers()[name]

    return make


def _streams(name: str) -> Callable[[], Callable[[Any], Any]]:
    def make() -> Callable[[Any], Any]:
        from chaoskit.proxy import response_stream  # noqa: PLC0415

        return response_stream.wrappers()[name]

    return make


def _extended_connect() -> Callable[[Any], Any]:
    from chaoskit.proxy import http2_connect  # noqa: PLC0415

    return http2_connect.wrappers()["handle_h2_event"]


def _alpn() -> Callable[[Any], Any]:
    from chaoskit.proxy.alpn import prefer_h2  # noqa: PLC0415

    return prefer_h2


def _literal_headers() -> Callable[[Any], Any]:
    from chaoskit.proxy.hpack_literal import with_literal_encoder  # noqa: PLC0415

    return with_literal_encoder


def _web_listeners() -> Callable[[Any], Any]:
    from chaoskit.proxy import web_state  # noqa: PLC0415 - tornado only for the web UI

    return web_state.install


def _no_typechecks() -> Callable[[Any], Any]:
    def wrap(original: Any) -> Callable[..., None]:
        def __post_init__(self: Any) -> None:  # the dataclass __init__ calls this
            return None

        return __post_init__

    return wrap


def _hook_inline() -> Callable[[Any], Any]:
    from chaoskit.proxy.hook_inline import wrap_handle_client  # noqa: PLC0415

    return wrap_handle_client


def _dispatch() -> Callable[[Any], Any]:
    from chaoskit.proxy.dispatch import use_dispatch  # noqa: PLC0415

    return use_dispatch


_HTTP1 = "mitmproxy.proxy.layers.http._http1"
_HTTP2 = "mitmproxy.proxy.layers.http._http2"
_HTTP_H2 = "mitmproxy.proxy.layers.http._http_h2"
_WEB_APP = "mitmproxy.tools.web.app"
_WEB_MASTER = "mitmproxy.tools.web.master:WebMaster"
_STREAM = "mitmproxy.proxy.layers.http:HttpStream"
_SERVER = "mitmproxy.proxy.server"

#: The name of the patch :class:`~chaoskit.proxy.budget_guard.BodyBudgetGuard` needs to release a
#: flow's bodies once its reply is sent (it falls back to the ``response`` hook without it).
SEND_RESPONSE = "stream.send_response"

PATCHES: tuple[Patch, ...] = (
    Patch(
        "http1.read_headers",
        Code(
            f"{_HTTP1}:Http1Server.read_headers",
            {"e4f18299322f0ed3": _M11, "be204ebc8c4a3a95": _M12},
        ),
        "mitmproxy/proxy/layers/http/_http1.py, Http1Server.read_headers, buffers an unfinished "
        "request head without limit ('FIXME: protect against header size DoS') and strips "
        "header values with bytes.strip(), hiding control characters at a value's edge. The "
        "wrapper answers a head over 64 KiB 431 and a head line with a control character 400 "
        "(Envoy's http1 codec), and arms the request header timer (codec_limits.HeadTimer); its "
        "CheckedBuffer subclasses h11's ReceiveBuffer to see each head's lines.",
        _guard("read_headers"),
        relies_on=(
            Code(
                "h11._receivebuffer:ReceiveBuffer.maybe_extract_lines",
                {"0a071408239f6679": f"{_H14}, {_H16}"},
            ),
        ),
    ),
    Patch(
        "http1.read_body",
        Code(
            f"{_HTTP1}:Http1Server.read_body", {"ca184192bcb1083e": _M11, "a1cda08b6f1ee305": _M12}
        ),
        "mitmproxy/proxy/layers/http/_http1.py, Http1Connection.read_body (inherited by "
        "Http1Server), raises NotImplementedError on request trailers (a traceback, then a "
        "hanging connection) and lets h11's ChunkedReader buffer a chunk-size line, its "
        "extensions and trailers until their CRLF (400 MB held). The wrapper drops trailers "
        "(Envoy's default), answers a control character in them 400, and caps what is "
        "buffered at 64 KiB (400).",
        _guard("read_body"),
        relies_on=(
            Code(
                "h11._readers:ChunkedReader.__call__",
                {"48b7abf64faddcb0": _H14, "4b87687f6d96d504": _H16},
            ),
        ),
    ),
    Patch(
        "http1.handle_event",
        Code(f"{_HTTP1}:Http1Server._handle_event", {"21b5e99728cd1c68": _M11_12}),
        "mitmproxy/proxy/layers/http/_http1.py, Http1Connection._handle_event, appends every "
        "byte a client sends while its request is in flight to the receive buffer (no bound), "
        "and mitmproxy's only timeout is the 600 s idle one, which restarts with every byte. "
        "The wrapper closes a connection that sends over 64 KiB while its request is in "
        "flight, starts the request header timer at Start (chaoskit_request_headers_timeout) "
        "and answers 408 when it fires.",
        _guard("_handle_event"),
    ),
    Patch(
        "server.handle_connection",
        Code(
            "mitmproxy.proxy.server:ConnectionHandler.handle_connection",
            {"a598801a37e862b7": _M11_12},
        ),
        "mitmproxy/proxy/server.py, ConnectionHandler.handle_connection: a connection "
        "cancelled while its reader waits for the event lock (server_event) leaves the loop "
        "without closing its socket: the client's sends stall and one descriptor leaks per "
        "client cut off mid-body. The wrapper marks it closed, forgets it and closes the "
        "writer.",
        _guard("handle_connection"),
    ),
    Patch(
        "stream.request_headers",
        Code(
            f"{_STREAM}.state_wait_for_request_headers",
            {"4e39a278faf93568": _M11, "88d5b76437aa24e8": _M12},
        ),
        "mitmproxy/proxy/layers/http/__init__.py, HttpStream.state_wait_for_request_headers: "
        "a reply an addon sets in the requestheaders hook is sent only after the whole body "
        "was read and buffered. The wrapper sends the body budget's refusal (503 OM / 413) at "
        "once; the rest of the body is read by the codec and dropped.",
        _budget("state_wait_for_request_headers"),
        relies_on=(
            Code(f"{_STREAM}.check_killed", {"ad9e67a2c6d974c2": _M11, "c9d092607efbdbb0": _M12}),
        ),
    ),
    Patch(
        "stream.request_body",
        Code(f"{_STREAM}.state_consume_request_body", {"84bcd87edee52907": _M11_12}),
        "mitmproxy/proxy/layers/http/__init__.py, HttpStream.state_consume_request_body "
        "buffers a body of unannounced length (chunked, HTTP/2) with no global bound, and keeps "
        "what it read of a body over body_size_limit until the cyclic collector runs. The "
        "wrapper reserves each chunk from the body budget, answers the moment one does not "
        "fit, and empties the buffers of a stream that failed.",
        _budget("state_consume_request_body"),
    ),
    Patch(
        "stream.protocol_error",
        Code(f"{_STREAM}.handle_protocol_error", {"923682081cf83137": _M11_12}),
        "mitmproxy/proxy/layers/http/__init__.py, HttpStream.handle_protocol_error keeps the "
        "body buffers of a stream whose client left or broke the protocol (freed only by the "
        "cyclic collector, which chaoskit proxy runs rarely). The wrapper empties them.",
        _budget("handle_protocol_error"),
    ),
    Patch(
        SEND_RESPONSE,
        Code(f"{_STREAM}.send_response", {"a449e37199508d5a": _M11_12}),
        "mitmproxy/proxy/layers/http/__init__.py, HttpStream.send_response: mitmproxy has no "
        "hook after a reply was handed to the connection. The wrapper tells the body budget "
        "then (BodyBudgetGuard.sent), which releases the flow's reservation and lets go of "
        "its bodies; without it they are released at the response hook and stay with the flow.",
        _budget("send_response"),
    ),
    Patch(
        "stream.start",
        Code(f"{_STREAM}.send_response", {"a449e37199508d5a": _M11_12}),
        "mitmproxy/proxy/layers/http/__init__.py, HttpStream.send_response sends a reply an "
        "addon set in the request hook whole: a body still arriving upstream (chunked, SSE, a "
        "download) would reach the client only when complete, and a stream longer than the "
        "route timeout never. The wrapper sends the head of a reply marked "
        "response_stream.StreamStart and leaves the stream in state_stream_response_body for "
        "the body chaoskit injects piece by piece.",
        _streams("send_response"),
        relies_on=(
            Code(
                f"{_STREAM}.state_stream_response_body",
                {"e86070b8ea64d694": _M11, "d6f3f1a5cfa9bdd7": _M12},
            ),
        ),
    ),
    Patch(
        "layer.inject_body",
        Code("mitmproxy.proxy.layers.http:HttpLayer._handle_event", {"0d74163b724a7ed3": _M11_12}),
        "mitmproxy/proxy/layers/http/__init__.py, HttpLayer._handle_event routes an injected "
        "message to a stream found through the flow's server connection, which an addon-"
        "answered flow does not have, and asserts HTTP/1 otherwise. The wrapper routes "
        "chaoskit's body events (response_stream.BodyData/BodyEnd/BodyReset) to the stream "
        "that holds the flow, through the tunnels of intercepted CONNECTs, and lets the relay "
        "see what BufferedH2Connection queues for an HTTP/2 client whose window is shut "
        "(response_stream.CLIENT_STREAM_BUFFER).",
        _streams("_handle_event"),
        relies_on=(
            Code(f"{_HTTP_H2}:BufferedH2Connection.send_data", {"9d015583edd735d9": _M11_12}),
        ),
    ),
    Patch(
        "message.skip_typechecks",
        Code("mitmproxy.http:MessageData.__post_init__", {"ce2229c67038f000": _M11_12}),
        "mitmproxy/http.py defines MessageData.__post_init__ only `if __debug__` (python -O "
        "drops it): a developer check that type-checks every field of every parsed request "
        "and response, about 5 % of the proxy's CPU under load (docs/performance.md). "
        "Replaced by a no-op only in a process chaoskit owns (the CLI).",
        _no_typechecks,
        scope=Scope.OWN_PROCESS,
        missing_ok=True,
    ),
    Patch(
        "addons.dispatch",
        Code("mitmproxy.addonmanager:AddonManager.handle_lifecycle", {"56246b387f582c8b": _M11_12}),
        "mitmproxy/addonmanager.py, AddonManager.handle_lifecycle / trigger_event walk every "
        "addon for every event, entering safecall() per addon, and send `update` after every "
        "flow hook: about 17 % of the lean proxy's CPU. A lean Master gets "
        "chaoskit.proxy.dispatch.DispatchAddonManager instead, which makes the same calls in "
        "the same order with the same error handling from a table per hook.",
        _dispatch,
        scope=Scope.MASTER,
        relies_on=(
            Code(
                "mitmproxy.addonmanager:AddonManager.trigger_event", {"acc86e8d489c1018": _M11_12}
            ),
            Code("mitmproxy.addonmanager:safecall", {"d3efc056da121665": _M11_12}),
            Code("mitmproxy.addonmanager:traverse", {"7235ad007525990a": _M11_12}),
        ),
    ),
    Patch(
        "hooks.inline",
        Code(
            f"{_SERVER}:ConnectionHandler.handle_client",
            {"68d7cb0dd7454bc7": _M11, "daed63193645c5a0": _M12},
        ),
        "mitmproxy/proxy/server.py, ConnectionHandler.server_event runs every hook a layer "
        "raises as a task (hook_task), which calls the addons and then takes the event lock "
        "again to feed HookCompleted back on a later loop turn: with three of a gRPC call's "
        "four flow hooks answered at once, those round trips were about a fifth of the "
        "proxy's CPU per call over TLS (docs/performance.md). The wrapper installs "
        "chaoskit.proxy.hook_inline on a connection of a Master with DispatchAddonManager: a "
        "hook whose handlers all return is completed right after the event that raised it; "
        "any other is finished by a task as hook_task does.",
        _hook_inline,
        relies_on=(
            Code(
                f"{_SERVER}:ConnectionHandler.server_event",
                {"5b5bb9c9bb82fbab": _M11, "c2d09fc112ac3d73": _M12},
            ),
            Code(f"{_SERVER}:ConnectionHandler.hook_task", {"140e9f41a4860f12": _M11_12}),
            Code(
                "mitmproxy.proxy.mode_servers:ProxyConnectionHandler.handle_hook",
                {"cb0dcf37dea3d035": _M11_12},
            ),
        ),
    ),
    Patch(
        "tls.alpn_prefers_h2",
        Code("mitmproxy.addons.tlsconfig:alpn_select_callback", {"81a5253eec328577": _M11_12}),
        "mitmproxy/addons/tlsconfig.py, alpn_select_callback, picks the client's first HTTP "
        "protocol when nothing else fixes it: httpx with http2=True offers http/1.1 before h2 "
        "and got HTTP/1.1, where Envoy (ALPN h2, http/1.1, server preference) chooses h2. The "
        "wrapper (chaoskit.proxy.alpn) answers h2 when the client offers it, no protocol is "
        "fixed for the client, no upstream connection exists and the http2 option is on; "
        "every other case is mitmproxy's. It reads the AppData TlsConfig.tls_start_client "
        "stores on the connection.",
        _alpn,
        relies_on=(
            Code(
                "mitmproxy.addons.tlsconfig:TlsConfig.tls_start_client",
                {
                    "2996e186e35e5044": "mitmproxy 11.0.2, 12.0.0",
                    "0ad7dc07afc886ab": "mitmproxy 12.1.0-12.2.0",
                    "4c415f49cffb4438": "mitmproxy 12.3.1",
                },
            ),
        ),
    ),
    Patch(
        "http2.extended_connect",
        Code(f"{_HTTP2}:Http2Server.handle_h2_event", {"72a0e31b2a0dc610": _M11_12}),
        "mitmproxy/proxy/layers/http/_http2.py, Http2Server.handle_h2_event, refuses an HTTP/2 "
        "extended CONNECT (:protocol websocket, RFC 8441) as Istio's Envoy does (GOAWAY "
        "PROTOCOL_ERROR: parse_h2_request_headers rejects the pseudo-header) but leaves no "
        "record of it. The wrapper (chaoskit.proxy.http2_connect) records the request (status "
        "0, DPE, http2.invalid.header.field) and hands it to mitmproxy unchanged.",
        _extended_connect,
        relies_on=(
            Code(f"{_HTTP2}:parse_h2_request_headers", {"5a1c74d47be3dddc": _M11_12}),
            Code(f"{_HTTP2}:Http2Connection.protocol_error", {"42c710bed5e1a602": _M11_12}),
        ),
    ),
    Patch(
        "http2.literal_headers",
        Code(f"{_HTTP_H2}:BufferedH2Connection.__init__", {"f987834b81beb540": _M11_12}),
        "mitmproxy/proxy/layers/http/_http_h2.py, BufferedH2Connection.__init__, gives each "
        "HTTP/2 connection hpack's Encoder, which searches its dynamic table linearly and "
        "Huffman-codes every new string in Python: about 2 % of the proxy's CPU on a gRPC call "
        "(its response headers and trailers). The wrapper gives the connection "
        "chaoskit.proxy.hpack_literal.LiteralEncoder, as chaoskit's own upstream connections "
        "have: static-table references and plain literals, valid HPACK for every decoder, no "
        "compression state to keep in step.",
        _literal_headers,
    ),
    Patch(
        "web.listeners",
        Code(f"{_WEB_MASTER}._sig_servers_changed", {"b09ae75b742de2d4": _W12}),
        "mitmproxy/tools/web/app.py and master.py show mitmweb's page the listeners as mode "
        "specs: State.get_json and WebMaster._sig_servers_changed key the servers by spec "
        "(the Capture tab), Options.get and WebMaster._sig_options_update send the mode option "
        "(the footer's badge). chaoskit's specs are internal (a Gateway's is "
        "reverse:http://127.0.0.1:9@..., the admin listener has one). web_state.install gives "
        "one WebMaster routes for /state and /options (subclasses of mitmweb's handlers, so "
        "its token check applies) and receivers for those two signals, which name each "
        "listener (forward proxy, workload, gateway, TCP) with its address and leave the admin "
        "listener out, and refuses a mode change from the page.",
        _web_listeners,
        scope=Scope.WEB,
        relies_on=(
            Code(f"{_WEB_MASTER}._sig_options_update", {"5761861bb38e02a7": _W12}),
            Code(f"{_WEB_APP}:State.get_json", {"20c919955c73ad5d": _W12}),
            Code(f"{_WEB_APP}:Options.get", {"2df1d3e2a79172ae": _W12}),
            Code(f"{_WEB_APP}:Options.put", {"f938a0065ec0d1b7": _W12}),
            Code(f"{_WEB_APP}:AuthRequestHandler.__init_subclass__", {"5014c4f9f4dcbae4": _W12}),
            Code(
                f"{_WEB_APP}:AuthRequestHandler._require_auth",
                {"68d8cf30c28a3df5": "mitmproxy 12.1.0", "d2328542c9d29743": _W12_2},
            ),
        ),
    ),
)
