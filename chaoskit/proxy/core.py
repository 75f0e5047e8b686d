"""``ChaosCore``: the mitmproxy addon that puts every HTTP flow through the pipeline.

The addon only translates: a flow becomes a :class:`~chaoskit.routing.request.RequestInfo`, the
pipeline decides and forwards, and the :class:`~chaoskit.proxy.replies.Reply` becomes
``flow.response``. It answers every flow itself (mitmproxy never forwards one), and it fails
closed: an exception inside the core becomes a 500, never a request that slips past its faults
(mitmproxy-notes §5, pitfall 2). The 500 names only a request id; the cause goes to the log and
the record, never to the client.

Requests Envoy's HTTP/1 codec would reject (invalid header characters, more than 100 headers or
60 KiB of them, an unknown HTTP version, two Host headers) are answered 400/431 with flag DPE
before any routing, and a request head that never ends is cut off at 64 KiB
(:mod:`chaoskit.proxy.guards`): mitmproxy alone would forward the first and buffer the second
without limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from mitmproxy import ctx, exceptions, http, tls
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy import mode_specs

from chaoskit.config import hosts, validate_paths
from chaoskit.config.mesh import Mesh
from chaoskit.loadbalancing.base import choose_avoiding
from chaoskit.proxy import guards, replies, webui
from chaoskit.proxy.addresses import valid_authority
from chaoskit.proxy.own_sockets import OwnSockets
from chaoskit.proxy.pipeline import HOPS_HEADER, Exchange, Pipeline
from chaoskit.proxy.replies import Reply
from chaoskit.proxy.upstream import UpstreamClient
from chaoskit.records import Record
from chaoskit.rng import Seeds, new_seed, parse_seed
from chaoskit.routing.decision import Forward, LocalReply
from chaoskit.routing.request import ANONYMOUS, RequestInfo, Workload, split_authority

logger = logging.getLogger("chaoskit")

MESH_LISTENER = "mesh"
#: How often a long-running request checks that its client is still connected.
DISCONNECT_POLL_SECONDS = 0.05
#: Envoy's defaults for request headers (``max_request_headers_kb``, ``max_headers_count``).
MAX_REQUEST_HEADERS_BYTES = 60 * 1024
MAX_REQUEST_HEADERS_COUNT = 100
#: Request bodies are buffered; above this mitmproxy answers 413 instead of growing memory.
MAX_REQUEST_BODY = "64m"
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Control characters other than HTAB are not allowed in a field value (RFC 9110 §5.5).
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: A request target must be a path (origin or absolute form); no controls, spaces or ``*``.
_INVALID_PATH = re.compile(rb"[\x00-\x20\x7f]|^[^/]")
_HTTP1_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1"})


def gateway_listener(port: int) -> str:
    return f"gateway:{port}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _checked_response(
    status: int, reason: bytes, headers: http.Headers, body: bytes, now: float
) -> http.Response:
    return http.Response(b"HTTP/1.1", status, reason, headers, body, None, now, now)


def _unchecked_response(
    status: int, reason: bytes, headers: http.Headers, body: bytes, now: float
) -> http.Response:
    """``http.Response(...)`` without the field type checks mitmproxy runs only ``if
    __debug__`` (``MessageData.__post_init__``): every argument here is built by the core with
    the right type, and the checks cost about 3 % of the proxy's CPU under load."""
    data = http.ResponseData.__new__(http.ResponseData)
    data.http_version = b"HTTP/1.1"
    data.status_code = status
    data.reason = reason
    data.headers = headers
    data.content = body
    data.trailers = None
    data.timestamp_start = now
    data.timestamp_end = now
    response = http.Response.__new__(http.Response)
    response.data = data
    return response


def _pick_response_factory() -> Callable[[int, bytes, http.Headers, bytes, float], http.Response]:
    """The unchecked factory only if it builds exactly what mitmproxy's constructor builds (a
    future mitmproxy with more response state falls back to the constructor)."""
    sample = (503, b"Service Unavailable", http.Headers([(b"a", b"b")]), b"body", 1.5)
    try:
        fast, slow = _unchecked_response(*sample), _checked_response(*sample)
        if fast.get_state() == slow.get_state() and vars(fast).keys() == vars(slow).keys():
            return _unchecked_response
    except Exception:  # pragma: no cover - a mitmproxy whose internals moved
        pass
    return _checked_response  # pragma: no cover


_new_response = _pick_response_factory()


def workload_from_proxy_auth(value: str | None) -> str:
    """The user name in ``Proxy-Authorization: Basic base64(user:)`` — the caller's identity."""
    if not value or not value.lower().startswith("basic "):
        return ""
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
    return decoded.partition(":")[0]


def in_registry(mesh: Mesh, host: str) -> bool:
    """Is ``host`` (as a client names it) a service of the mesh? Decides TLS interception."""
    name = host.lower().rstrip(".")
    candidates = {name, hosts.expand(name, "default")}
    if name.count(".") in (1, 2) and not hosts.is_ip(name):  # svc.ns or svc.ns.svc
        svc, _, rest = name.partition(".")
        candidates.add(f"{svc}.{rest.split('.')[0]}.{hosts.CLUSTER_DOMAIN}")
    return any(mesh.find_service(c) is not None for c in candidates)


def protocol_violation(flow: http.HTTPFlow) -> Reply | None:
    """What Envoy's codec would answer instead of routing this request, if anything."""
    req = flow.request
    h2 = req.http_version == "HTTP/2.0" and flow.client_conn.alpn == b"h2"
    codec = "http2" if h2 else "http1"
    if req.http_version not in _HTTP1_VERSIONS and not h2:
        return replies.downstream_protocol_error(400, "http1.codec_error")
    if not _TOKEN.fullmatch(req.data.method) or _INVALID_PATH.search(req.data.path):
        return replies.downstream_protocol_error(400, f"{codec}.codec_error")
    fields = req.headers.fields
    if len(fields) > MAX_REQUEST_HEADERS_COUNT:
        return replies.downstream_protocol_error(431, f"{codec}.too_many_headers")
    size = len(req.method) + len(req.path) + sum(len(k) + len(v) + 4 for k, v in fields)
    if size > MAX_REQUEST_HEADERS_BYTES:
        return replies.downstream_protocol_error(431, f"{codec}.headers_too_large")
    hosts = 0
    for name, value in fields:
        if not _TOKEN.fullmatch(name) or _INVALID_VALUE.search(value):
            return replies.downstream_protocol_error(400, f"{codec}.invalid_characters")
        lower = name.lower()
        hosts += lower == b"host"
        if lower == b"content-length" and not value.strip().isdigit():
            return replies.downstream_protocol_error(400, f"{codec}.codec_error")
    if hosts > 1:  # RFC 9112 §3.2: more than one Host header is answered 400
        return replies.downstream_protocol_error(400, f"{codec}.codec_error")
    if not valid_authority(request_authority(flow)):
        return replies.downstream_protocol_error(400, "http.invalid_authority")
    return None


def request_authority(flow: http.HTTPFlow) -> str:
    """The authority a request is for. A forward proxy must take the absolute-form URL's and
    ignore ``Host`` (RFC 9112 §3.2.2); mitmproxy keeps that URL's host and port in
    ``request.host``/``port`` (it rewrites the target to origin-form), so on the forward-proxy
    listener those win, and the ``Host`` header is used only where it says the same thing (to
    keep how the client wrote it). HTTP/2's ``:authority`` and a reverse-proxy listener's
    ``Host`` are taken as they are."""
    req = flow.request
    if req.authority:
        return req.authority
    host_header = req.host_header
    if isinstance(flow.client_conn.proxy_mode, mode_specs.RegularMode) and req.host:
        host, port = req.host, req.port
        shown = f"[{host}]" if ":" in host else host
        default = 443 if req.scheme == "https" else 80
        url_authority = shown if port == default else f"{shown}:{port}"
        if host_header is not None and host_header.lower().rstrip(".") in (
            shown.lower(), f"{shown.lower()}:{port}"
        ):  # fmt: skip
            return host_header
        return url_authority
    return host_header or f"{req.host}:{req.port}"


def _header_bytes(text: str) -> bytes:
    """A header name or value as bytes on the wire. Relayed upstream headers were read as
    latin-1; a value copied from the request (``%REQ(x)%``) holds the client's own bytes, which
    mitmproxy decodes as UTF-8 with surrogate escapes — those go back out as they came in."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").translate(None, b"\r\n\0")


def _from_self(flow: http.HTTPFlow, own: OwnSockets) -> bool:
    """Did this request's connection come from one of the proxy's own upstream sockets?"""
    client = flow.client_conn
    return bool(client.peername and client.sockname) and own.opened(
        client.peername, client.sockname
    )


def _safe_target(flow: http.HTTPFlow) -> str:
    try:
        return f"{flow.request.method} {flow.request.pretty_url}"[:200]
    except Exception:
        return "a request"


#: The reply of last resort: fixed bytes, nothing from the request, so building it cannot fail.
_LAST_RESORT_BODY = b"chaoskit internal error"


def _fail_closed(flow: http.HTTPFlow) -> None:
    """Answer 500 without touching anything the client sent; if even that fails, drop the
    connection. Either way mitmproxy has nothing left to forward."""
    try:
        headers = http.Headers(
            [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(_LAST_RESORT_BODY)).encode()),
                (b"x-chaoskit-error", b"core-error"),
                (b"server", b"envoy"),
                (b"connection", b"close"),
            ]
        )
        now = flow.request.timestamp_start
        reason = b"Internal Server Error"
        flow.response = _new_response(500, reason, headers, _LAST_RESORT_BODY, now)
    except Exception:
        logger.exception("chaoskit could not answer; dropping the connection")
        flow.kill()


class ChaosCore:
    """Routes, injects and forwards every HTTP flow; see the module docstring."""

    def __init__(self, pipeline: Pipeline | None = None) -> None:
        self.pipeline = pipeline or Pipeline(Seeds(new_seed()), UpstreamClient())
        #: client connection id → workload name given on CONNECT (HTTPS keeps it for the tunnel)
        self._identities: dict[str, str] = {}
        #: client connection id → where its tunnel to a registry host goes (None: nowhere)
        self._tunnels: dict[str, tuple[str, int] | None] = {}
        #: client connections whose tunnel chaoskit passes through (mitmproxy connects those)
        self._tunnel_clients: set[str] = set()
        #: called with each finished record (access log, tests)
        self.on_record: list[Callable[[Record], None]] = []
        self.in_flight: set[asyncio.Task[Any]] = set()
        #: hook tasks inside the pipeline → their flow and exchange (see :meth:`_sweep`)
        self._watched: dict[asyncio.Task[Any], tuple[http.HTTPFlow, Exchange]] = {}
        #: watched tasks cancelled because their client went away
        self._client_gone: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Future[None] | None = None
        #: Copy each record into ``flow.metadata`` (mitmweb / mitmdump -s); the lean runtime
        #: turns this off unless it serves the web UI.
        self.flow_metadata = True
        #: bound port of a gateway listener → the Gateway server port it serves (from the YAML)
        self.gateway_ports: dict[int, int] = {}
        # Loop detection needs to know which addresses are this proxy's own listeners.
        self._listeners_key: object = None
        self._listeners: dict[tuple[str, int], str] = {}
        self.pipeline.own_listeners = self.own_listeners
        guards.install()

    def own_listeners(self) -> dict[tuple[str, int], str]:
        """Every address this proxy listens on: ``(host, port) → "mesh"`` for the forward
        proxy, ``"gateway"`` for Gateway listeners, ``"admin"`` for any other reverse-proxy
        listener (the admin API), ``"web"`` for mitmweb's UI. Only a Gateway listener is ever a
        destination (:data:`chaoskit.proxy.pipeline.HOP_KINDS`).

        Asked on every forwarded request (loop detection); the answer is kept until the set of
        listeners changes (reading the bound addresses is a system call per socket)."""
        try:
            servers = list(ctx.master.addons.get("proxyserver").servers)
        except Exception:  # no master (unit tests) or not started yet
            return {}
        key = (
            tuple((id(server), server.is_running) for server in servers),
            len(self.gateway_ports),
        )
        if key == self._listeners_key:
            return self._listeners
        out: dict[tuple[str, int], str] = {}
        for server in servers:
            try:
                addresses = server.listen_addrs
            except Exception:
                continue
            for address in addresses:
                port = int(address[1])
                if isinstance(server.mode, mode_specs.RegularMode):
                    kind = "mesh"
                elif isinstance(server.mode, mode_specs.ReverseMode):
                    kind = "gateway" if port in self.gateway_ports else "admin"
                else:
                    kind = "proxy"  # any other mode a mitmdump user added: never a destination
                out[(str(address[0]), port)] = kind
        web = webui.web_address(ctx.master)
        if web is not None:
            out[web] = "web"
        self._listeners_key, self._listeners = key, out
        return out

    # -- configuration (mitmdump -s / mitmweb -s) ---------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            "chaoskit_config",
            str,
            "",
            "Istio/chaoskit YAML file or folder (several: comma-separated).",
        )
        loader.add_option(
            "chaoskit_seed", str, "", "Seed for every random decision (default: random)."
        )

    def configure(self, updated: set[str]) -> None:
        if "chaoskit_seed" in updated and ctx.options.chaoskit_seed:
            try:
                self.pipeline.set_seed(parse_seed(ctx.options.chaoskit_seed))
            except ValueError as e:
                raise exceptions.OptionsError(f"chaoskit_seed: {e}") from None
        if "chaoskit_config" in updated and ctx.options.chaoskit_config:
            paths = [p.strip() for p in ctx.options.chaoskit_config.split(",") if p.strip()]
            v = validate_paths(paths)
            if not v.ok:
                # OptionsError makes mitmproxy roll the option back: the old config stays.
                lines = [str(i) for i in v.issues.errors]
                raise exceptions.OptionsError("invalid chaoskit config:\n" + "\n".join(lines))
            self.set_mesh(v.mesh)
            logger.info(
                f"chaoskit: loaded {len(v.resources)} resources, seed {self.pipeline.seeds.seed}"
            )

    def set_mesh(self, mesh: Mesh) -> None:
        self.pipeline.set_mesh(mesh)

    async def running(self) -> None:
        # Under stock mitmdump/mitmweb: never dial upstream on connect (pitfall 1), and keep the
        # Host header in reverse mode so Gateway host matching works (pitfall 13).
        if webui.is_web_master(ctx.master) and not webui.web_ui_is_safe():
            # Serving flows (and options) through an unauthenticated API beside a proxy that
            # anyone local can use is a remote-code-execution hole: refuse to be part of it.
            logger.error(f"chaoskit: refusing to run inside mitmweb: {webui.refusal()}")
            ctx.master.shutdown()
            return
        ctx.options.update(connection_strategy="lazy", keep_host_header=True)
        if not ctx.options.body_size_limit:  # request bodies are buffered: bound them
            ctx.options.update(body_size_limit=MAX_REQUEST_BODY)
        await self.pipeline.client.start()
        logger.info(f"chaoskit: seed {self.pipeline.seeds.seed}")

    async def done(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.pipeline.client.close()

    # -- connections ---------------------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """Admit or refuse a tunnel, and decide where it may go.

        Remembers who opened it (requests inside carry no Proxy-Authorization). Refuses a
        tunnel into this proxy itself, and whatever Istio's listeners would send to the
        ``block_all`` route under REGISTRY_ONLY — a host outside the registry, or a port its
        ServiceEntry does not declare. A tunnel to a registry host that is not intercepted goes
        to one of the service's endpoints (:meth:`server_connect`), not wherever DNS says."""
        client_id = flow.client_conn.id
        name = workload_from_proxy_auth(flow.request.headers.get("proxy-authorization"))
        if name:
            self._identities[client_id] = name
        host, port = flow.request.host, flow.request.port
        if _from_self(flow, self.pipeline.client.own_sockets) or self.pipeline.own_listener(
            host, port
        ):
            logger.info("chaoskit: CONNECT %s:%d would loop into this proxy: 502", host, port)
            self.pipeline.stats.inc("http.downstream_rq_loop")
            flow.response = http.Response.make(502, b"request loop detected", {"server": "envoy"})
            return
        snapshot = self.pipeline.snapshot
        source = self._workload(name or self._identities.get(client_id, ""))
        info = RequestInfo(
            method="CONNECT", scheme="https", authority=f"{host}:{port}", path="/", port=port,
            source=source,
        )  # fmt: skip
        decision = snapshot.router.route(info, MESH_LISTENER, self.pipeline.seeds.stream("connect"))
        if isinstance(decision, LocalReply) and decision.route_name == "block_all":
            # Istio's BlackHoleCluster closes such connections; a forward proxy says so with 502.
            flow.response = http.Response.make(502, b"", {"server": "envoy"})
            return
        if in_registry(snapshot.mesh, host):
            self._tunnels[client_id] = self._tunnel_target(decision, source.name)

    def _tunnel_target(self, decision: object, source: str) -> tuple[str, int] | None:
        """An endpoint of the service a tunnel is for (``None``: no endpoint to go to)."""
        if not isinstance(decision, Forward):
            return None
        cluster = self.pipeline.clusters.get(decision.cluster, source)
        if cluster is None or cluster.original_destination:
            return None
        hosts = cluster.healthy_hosts(self.pipeline.clock.monotonic())
        host = choose_avoiding(cluster.lb, hosts, cluster.rng) if hosts else None
        return (host.address, host.port) if host is not None else None

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        """Intercept TLS only for hosts in the registry; tunnel everything else untouched."""
        server = data.context.server.address
        host = data.client_hello.sni or (server[0] if server else "")
        if not host or not in_registry(self.pipeline.snapshot.mesh, host):
            data.ignore_connection = True
            self._tunnel_clients.add(data.context.client.id)

    def tcp_start(self, flow: Any) -> None:
        """A tunnel carrying neither TLS nor HTTP: passed through as it is."""
        self._tunnel_clients.add(flow.client_conn.id)

    def server_connect(self, data: Any) -> None:
        """mitmproxy is about to open an upstream connection itself. chaoskit forwards HTTP
        through its own client, so the only connections mitmproxy may open are the tunnels
        chaoskit decided to pass through; anything else is an HTTP request that escaped the
        core, and is refused rather than forwarded. A tunnel to a registry host goes to the
        endpoint chosen at CONNECT; nothing goes to this proxy's own listeners."""
        client_id = data.client.id
        if client_id not in self._tunnel_clients:
            logger.error(
                "chaoskit: refused an upstream connection mitmproxy tried to open to %s "
                "(chaoskit forwards every HTTP request itself)", data.server.address,
            )  # fmt: skip
            data.server.error = "chaoskit: refused (not a tunnel)"
            return
        if client_id in self._tunnels:
            target = self._tunnels[client_id]
            if target is None:
                data.server.error = "chaoskit: no healthy endpoint for this tunnel"
                return
            data.server.address = target
        address = data.server.address
        if address and self.pipeline.own_listener(str(address[0]), int(address[1])):
            self.pipeline.stats.inc("http.downstream_rq_loop")
            data.server.error = "chaoskit: request loop (the tunnel leads into this proxy)"

    def server_connected(self, data: Any) -> None:
        server = data.server
        if server.sockname and server.peername:
            self.pipeline.client.own_sockets.add_connection(
                server.id, server.sockname, server.peername
            )

    def server_disconnected(self, data: Any) -> None:
        self.pipeline.client.own_sockets.remove_connection(data.server.id)

    def client_disconnected(self, client: Any) -> None:
        self._identities.pop(client.id, None)
        self._tunnels.pop(client.id, None)
        self._tunnel_clients.discard(client.id)

    # -- requests ----------------------------------------------------------------------------------

    def _listener(self, flow: http.HTTPFlow) -> str:
        mode = flow.client_conn.proxy_mode
        if isinstance(mode, mode_specs.ReverseMode):
            port = flow.client_conn.sockname[1] if flow.client_conn.sockname else 0
            return gateway_listener(self.gateway_ports.get(port, port))
        return MESH_LISTENER

    def request_info(
        self, flow: http.HTTPFlow, listener: str, *, trust_hops: bool = False
    ) -> RequestInfo:
        req = flow.request
        scheme = req.scheme or "http"
        default_port = 443 if scheme == "https" else 80
        authority = request_authority(flow)
        _, port = split_authority(
            authority, default_port if listener != MESH_LISTENER else req.port
        )
        headers: dict[str, str] = {}
        for k, v in req.headers.items(multi=True):
            key = k.lower()
            if key == HOPS_HEADER and not trust_hops:
                continue  # only chaoskit sets it, on its own connections
            headers[key] = f"{headers[key]},{v}" if key in headers else v
        name = workload_from_proxy_auth(headers.get("proxy-authorization"))
        name = name or self._identities.get(flow.client_conn.id, "")
        path, _, query = req.path.partition("?")
        return RequestInfo(
            method=req.method,
            scheme=scheme,
            authority=authority,
            path=path or "/",
            query=query,
            headers=headers,
            port=port,
            source=self._workload(name),
            client_address=flow.client_conn.peername[0] if flow.client_conn.peername else "",
        )

    def _workload(self, name: str) -> Workload:
        if not name:
            return ANONYMOUS
        entry = self.pipeline.snapshot.mesh.workloads_by_name.get(name)
        if entry is None:
            return Workload(name=name)
        return Workload(name=name, namespace=entry.namespace, labels=dict(entry.labels))

    async def request(self, flow: http.HTTPFlow) -> None:
        """Every path ends in a chaoskit reply or a killed flow, never in mitmproxy forwarding
        the request itself: an exception escaping this hook is only logged by mitmproxy, which
        then sends the original request to its absolute-form URL's host — outside every rule,
        REGISTRY_ONLY included, and unrecorded."""
        if flow.response is not None or flow.error is not None:
            return
        try:
            await self._request(flow)
        except Exception:
            logger.exception("chaoskit core error while answering %s", _safe_target(flow))
        finally:
            if flow.response is None and flow.error is None:
                _fail_closed(flow)

    async def _request(self, flow: http.HTTPFlow) -> None:
        task = asyncio.current_task()
        assert task is not None  # mitmproxy runs every hook in a task of its own
        self.in_flight.add(task)
        listener = self._listener(flow)
        ex: Exchange | None = None
        reply: Reply | None
        try:
            from_self = _from_self(flow, self.pipeline.client.own_sockets)
            info = self.request_info(flow, listener, trust_hops=from_self)
            headers = [
                (k, v) for k, v in flow.request.headers.items(multi=True)
                if from_self or k.lower() != HOPS_HEADER
            ]  # fmt: skip
            body = flow.request.raw_content or b""
            ex = self.pipeline.new_exchange(info, headers, body, listener)
            violation = protocol_violation(flow)
            if violation is not None:
                reply = violation
            elif from_self and (listener == MESH_LISTENER or not ex.hops):
                reply = self._loop_from_self(ex, listener)
            else:
                reply = await self._handle_while_connected(task, flow, ex)
        except Exception as e:  # fail closed: never let the flow through untouched
            request_id = ex.request_id if ex is not None else str(uuid.uuid4())
            logger.exception("chaoskit core error on request %s", request_id)
            if ex is not None:
                ex.notes.append(f"chaoskit internal error: {type(e).__name__}: {e}")
            reply = replies.internal_error(request_id)
        finally:
            self.in_flight.discard(task)
        if reply is None:  # the client went away: everything was cancelled, nothing to send
            assert ex is not None
            self._record(flow, ex, replies.client_gone(), client_gone=True)
            flow.kill()
            return
        reply = self._respond(flow, ex, reply, listener)
        if ex is not None:
            self._record(flow, ex, reply)

    def _respond(
        self, flow: http.HTTPFlow, ex: Exchange | None, reply: Reply, listener: str
    ) -> Reply:
        """Turn the reply into ``flow.response``. A reply that cannot be sent as it is (a
        header copied from the request with bytes that are not latin-1, a body a gRPC
        conversion cannot carry) becomes the internal-error reply, which always can."""
        try:
            if "application/grpc" in flow.request.headers.get("content-type", ""):
                reply = replies.as_grpc(reply)
            flow.response = self._to_response(flow, reply, listener)
            return reply
        except Exception as e:
            request_id = ex.request_id if ex is not None else str(uuid.uuid4())
            logger.exception("chaoskit could not build the reply to request %s", request_id)
            if ex is not None:
                ex.notes.append(f"chaoskit internal error: reply: {type(e).__name__}: {e}")
            fallback = replies.internal_error(request_id)
            try:
                flow.response = self._to_response(flow, fallback, listener)
            except Exception:  # the request still gets its record, whatever the client got
                _fail_closed(flow)
                if ex is not None and flow.response is None:
                    ex.notes.append("chaoskit internal error: no reply could be sent; dropped")
            return fallback

    def _record(
        self, flow: http.HTTPFlow, ex: Exchange, reply: Reply, *, client_gone: bool = False
    ) -> None:
        """Record the request; a failure here is logged, and the reply still goes out."""
        try:
            self._finished(flow, ex, reply, client_gone=client_gone)
        except Exception:
            logger.exception("chaoskit could not record request %s", ex.request_id)

    def _loop_from_self(self, ex: Exchange, listener: str) -> Reply:
        """A request that arrived over one of this proxy's own outgoing connections without
        the hop count chaoskit adds when it knowingly forwards to its own Gateway listener: a
        loop that no address check recognised. Refused, whatever headers it carries."""
        where = "forward-proxy" if listener == MESH_LISTENER else "Gateway"
        ex.notes.append(
            f"request loop: arrived at this proxy's own {where} listener over one of its own "
            "upstream connections; refused"
        )
        self.pipeline.stats.inc("http.downstream_rq_loop")
        return replies.request_loop()

    def _finished(
        self, flow: http.HTTPFlow, ex: Exchange, reply: Reply, *, client_gone: bool = False
    ) -> None:
        record = self.pipeline.finish(ex, reply, client_gone=client_gone)
        self._annotate(flow, record)
        for callback in self.on_record:
            callback(record)

    async def _handle_while_connected(
        self, task: asyncio.Task[Any], flow: http.HTTPFlow, ex: Exchange
    ) -> Reply | None:
        """Run the pipeline, but cancel all of it the moment the client disconnects (Envoy
        resets the upstream request and frees its circuit-breaker slot; mitmproxy alone would
        let the hook run to completion). ``None`` means the client is gone.

        The pipeline runs in the hook's own task; one sweeper for the whole proxy
        (:meth:`_sweep`) cancels the tasks whose client left. That costs nothing per request,
        where a watcher per request (a second task and a timed wait) cost about 3 % of the
        proxy's CPU under load."""
        self._watched[task] = (flow, ex)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())
        reply: Reply | None = None
        gone = False
        try:
            reply = await self.pipeline.handle(ex)
        except asyncio.CancelledError:
            if task not in self._client_gone:
                raise  # cancelled for another reason (shutdown): not ours to swallow
        finally:
            self._watched.pop(task, None)
            if task in self._client_gone:  # our cancellation was delivered: take it back,
                gone = True  # however the pipeline ended after it
                self._client_gone.discard(task)
                task.uncancel()
        return None if gone else reply

    async def _sweep(self) -> None:
        """Every :data:`DISCONNECT_POLL_SECONDS`, cancel the requests whose client has gone;
        ends when nothing is being watched."""
        while self._watched:
            await asyncio.sleep(DISCONNECT_POLL_SECONDS)
            for task, (flow, ex) in list(self._watched.items()):
                if task in self._client_gone or flow.client_conn.state & ConnectionState.CAN_READ:
                    continue
                ex.notes.append(self.pipeline.gave_up_note(ex))
                self._client_gone.add(task)
                task.cancel()

    def _to_response(self, flow: http.HTTPFlow, reply: Reply, listener: str) -> http.Response:
        server = "envoy" if listener == MESH_LISTENER else "istio-envoy"
        headers = [
            (_header_bytes(k), _header_bytes(v)) for k, v in reply.headers if k.lower() != "server"
        ]
        headers.append((b"server", server.encode()))
        closes = reply.cut or "close" in flow.request.headers.get("connection", "").lower()
        if closes and not any(k.lower() == b"connection" for k, _ in headers):
            headers.append((b"connection", b"close"))
        reason = (reply.reason or _phrase(reply.status)).encode("latin-1", "replace")
        now = flow.request.timestamp_end or flow.request.timestamp_start
        return _new_response(reply.status, reason, http.Headers(headers), reply.body, now)

    def _annotate(self, flow: http.HTTPFlow, record: Record) -> None:
        """What mitmweb shows: the route, the endpoint, and anything injected."""
        if self.flow_metadata:  # a deep copy per request: only for a UI that shows it
            flow.metadata["chaoskit"] = record.to_dict()
        parts = [f"route {record.route_name or '-'}", f"cluster {record.cluster or '-'}"]
        if record.upstream_host:
            parts.append(f"endpoint {record.upstream_host}")
        if record.flags:
            parts.append("flags " + ",".join(record.flags))
        if record.faults:
            parts.append("injected " + ",".join(record.faults))
        if len(record.attempts) > 1:
            parts.append(f"{len(record.attempts)} attempts")
        flow.comment = "; ".join(parts)
        if record.faults or record.flags:
            flow.marked = ":warning:"
