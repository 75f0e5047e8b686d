"""``DownstreamLimits``: the connection cap and the request header timeout (Envoy's listener
``max_connections`` / overload manager, and ``request_headers_timeout``).

Why a cap: every client connection holds a file descriptor, and every request it proxies may
hold a second one upstream. Past ``RLIMIT_NOFILE`` nothing can open a file or a socket — an
upstream connection, the configuration the file watcher reads — so 300 idle connections at
``ulimit -n 256`` took the whole proxy down. With the cap, a connection past it is closed the
moment it is accepted (mitmproxy closes a client whose ``client.error`` the
``client_connected`` hook set), counted in ``listener.downstream_cx_overflow``, and the
proxy logs one line when it starts shedding and one when it has room again — not one per
connection. The default is derived from the descriptor limit so the process never reaches it
(:func:`default_max_connections`).

The header timeout is enforced by mitmproxy's HTTP/1 server (:mod:`chaoskit.proxy.guards`,
which reads the option this addon declares) once a client has sent something, and here, with
a timer per connection, for a client that has sent nothing at all (mitmproxy makes no HTTP
layer until data arrives).

Options (``mitmdump -s``: ``--set chaoskit_max_connections=500``,
``--set chaoskit_request_headers_timeout=5s``):

- ``chaoskit_max_connections``: downstream connections open at once; unset: derived from the
  descriptor limit.
- ``chaoskit_request_headers_timeout``: a duration; ``0`` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from chaoskit.clock import SYSTEM_CLOCK, Clock
from chaoskit.config.durations import format_duration, parse_duration
from chaoskit.proxy import codec_limits
from chaoskit.stats import Stats

try:
    import resource
except ImportError:  # pragma: no cover - not a POSIX system
    resource = None  # type: ignore[assignment]

logger = logging.getLogger("chaoskit")

MAX_CONNECTIONS_OPTION = "chaoskit_max_connections"
#: Set on a mitmproxy client connection once it has sent data.
_SPOKE = "_chaoskit_spoke"
REQUEST_HEADERS_TIMEOUT_OPTION = codec_limits.REQUEST_HEADERS_TIMEOUT_OPTION
#: Envoy leaves ``request_headers_timeout`` off; chaoskit's default is 10 s (see docs/proxy.md).
DEFAULT_REQUEST_HEADERS_TIMEOUT = 10.0
#: Descriptors one proxied request may hold: the client's connection and one upstream.
FDS_PER_CONNECTION = 2
#: Descriptors kept out of the connection budget: asyncio accepts up to 100 connections per
#: wake-up before the cap can close any (its listen backlog), plus the process's own (standard
#: streams, event loop, listeners, access log, the configuration being read, the CA) and the
#: admin listener's headroom.
RESERVED_FDS = 160
#: The admin listener may go this far past the cap, so ``/stats`` and ``/ready`` still answer
#: while the proxy sheds (Envoy's ``ignore_global_conn_limit`` for its admin listener).
ADMIN_HEADROOM = 8
#: Never derive a cap below this (a descriptor limit that low fails elsewhere first).
MIN_MAX_CONNECTIONS = 16
#: A limit this high (or unlimited) gives this cap: more than a dev proxy ever holds.
MAX_DERIVED_CONNECTIONS = 32_768
#: The proxy says it has room again once this fraction of the cap (at least one) is free.
RECOVERY_FRACTION = 0.1
#: At most one "limit reached" line (and its "again" line) in this many seconds.
LOG_QUIET_SECONDS = 10.0
#: ``chaoskit proxy`` raises its soft descriptor limit to the hard one, up to this.
NOFILE_CEILING = 65_536
#: macOS refuses a soft limit above ``OPEN_MAX`` even when the hard limit is unlimited.
_MACOS_OPEN_MAX = 10_240


def open_files_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` (``None``: unlimited or unknown)."""
    if resource is None:  # pragma: no cover
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY or soft < 0 else int(soft)


def default_max_connections(nofile: int | None) -> int:
    """The cap that keeps a process with ``nofile`` descriptors from running out: what is
    left after :data:`RESERVED_FDS`, :data:`FDS_PER_CONNECTION` per connection."""
    if nofile is None:
        return MAX_DERIVED_CONNECTIONS
    derived = (nofile - RESERVED_FDS) // FDS_PER_CONNECTION
    return max(MIN_MAX_CONNECTIONS, min(MAX_DERIVED_CONNECTIONS, derived))


def raise_open_files_limit(ceiling: int = NOFILE_CEILING) -> tuple[int | None, int | None]:
    """Raise the soft descriptor limit to the hard one (at most ``ceiling``), as servers do at
    start; returns the soft limit (before, after). For a process the proxy owns (the CLI): a
    library must not change its host's limits."""
    before = open_files_limit()
    if resource is None or before is None:  # pragma: no cover
        return before, before
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    target = ceiling if hard == resource.RLIM_INFINITY else min(int(hard), ceiling)
    for candidate in (target, min(target, _MACOS_OPEN_MAX)):
        if candidate <= before:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (candidate, hard))
        except (ValueError, OSError):
            continue
        break
    return before, open_files_limit()


def check_max_connections(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"max_connections must be at least 1, not {value}")
    return value


def check_request_headers_timeout(seconds: float) -> float:
    if not seconds >= 0:
        raise ValueError(f"request_headers_timeout must be 0 (off) or more, not {seconds}")
    return seconds


def spoke(client: Any) -> bool:
    """Has this client connection sent anything? (A client that never does has no protocol
    layer to time it, so :class:`DownstreamLimits` does.)"""
    return bool(getattr(client, _SPOKE, False))


def _never(client: Any) -> bool:
    return False


class DownstreamLimits:
    """The mitmproxy addon; one per proxy, ahead of the others (see the module docstring).

    ``max_connections``: ``None`` derives the cap from the descriptor limit at each new
    connection (so raising the limit later raises it too). ``request_headers_timeout``:
    seconds, ``0`` for none. ``is_admin``: whether a client connected to the admin listener.
    """

    def __init__(
        self,
        stats: Stats,
        *,
        max_connections: int | None = None,
        request_headers_timeout: float = DEFAULT_REQUEST_HEADERS_TIMEOUT,
        is_admin: Callable[[Any], bool] = _never,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.stats = stats
        self._max_connections = check_max_connections(max_connections)
        self._request_headers_timeout = check_request_headers_timeout(request_headers_timeout)
        self.is_admin = is_admin
        #: ids of the client connections counted against the cap
        self._open: set[str] = set()
        self.clock = clock
        self._shedding = False
        #: the "limit reached" line of this shedding episode was written
        self._said_so = False
        self._last_said: float | None = None
        self._refused_since_said = 0
        self._previous_sink: Callable[[str], None] | None = None
        #: client id → the timer that ends it if it never sends a byte
        self._silent: dict[str, asyncio.TimerHandle] = {}

    @property
    def max_connections(self) -> int:
        """The cap in force: the configured one, or the one derived from the current limit."""
        if self._max_connections is not None:
            return self._max_connections
        return default_max_connections(open_files_limit())

    @property
    def open_connections(self) -> int:
        """Client connections counted against the cap right now."""
        return len(self._open)

    # -- options (mitmdump -s) ------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option(
            MAX_CONNECTIONS_OPTION,
            int | None,
            self._max_connections,
            "Downstream connections open at once; past it new ones are closed at once "
            "(default: derived from the open-files limit).",
        )
        loader.add_option(
            REQUEST_HEADERS_TIMEOUT_OPTION,
            str,
            format_duration(self._request_headers_timeout) or "0",
            "A request head not complete this long after the connection opened (or after its "
            "first byte, for later requests) is answered 408 and the connection closed; 0: off.",
        )

    def configure(self, updated: set[str]) -> None:
        from mitmproxy import ctx, exceptions  # noqa: PLC0415 - mitmproxy only when running

        # An OptionsError makes mitmproxy roll the option back: the previous value stays.
        if MAX_CONNECTIONS_OPTION in updated:
            value = getattr(ctx.options, MAX_CONNECTIONS_OPTION)
            try:
                self._max_connections = check_max_connections(value)
            except ValueError as e:
                raise exceptions.OptionsError(f"{MAX_CONNECTIONS_OPTION}: {e}") from None
        if REQUEST_HEADERS_TIMEOUT_OPTION in updated:
            text = getattr(ctx.options, REQUEST_HEADERS_TIMEOUT_OPTION)
            try:
                seconds = check_request_headers_timeout(parse_duration(text))
            except ValueError as e:
                raise exceptions.OptionsError(f"{REQUEST_HEADERS_TIMEOUT_OPTION}: {e}") from None
            self._request_headers_timeout = seconds

    def running(self) -> None:
        self._previous_sink = codec_limits.set_stat_sink(self.stats.inc)
        seconds = self._request_headers_timeout
        timeout = format_duration(seconds) if seconds else "off"
        logger.info(
            "chaoskit: max_connections %d, request_headers_timeout %s (open-files limit %s)",
            self.max_connections, timeout, open_files_limit() or "unlimited",
        )  # fmt: skip

    def done(self) -> None:
        codec_limits.set_stat_sink(self._previous_sink)

    # -- connections ----------------------------------------------------------------------------

    def client_connected(self, client: Any) -> None:
        cap = self.max_connections
        limit = cap + ADMIN_HEADROOM if self.is_admin(client) else cap
        if len(self._open) >= limit:
            client.error = "chaoskit: connection limit reached"  # mitmproxy closes it at once
            self.stats.inc("listener.downstream_cx_overflow")
            self._refused_since_said += 1
            if not self._shedding:
                self._start_shedding(cap)
            return
        self._open.add(client.id)
        if self._request_headers_timeout > 0:
            loop = asyncio.get_running_loop()
            self._silent[client.id] = loop.call_later(
                self._request_headers_timeout, self._silent_too_long, client
            )

    def next_layer(self, nextlayer: Any) -> None:
        """mitmproxy picks a connection's protocol when its first data arrives; from then on
        that protocol's timers apply (the HTTP/1 server's: :mod:`chaoskit.proxy.guards`)."""
        if not spoke(nextlayer.context.client) and nextlayer.data_client():
            setattr(nextlayer.context.client, _SPOKE, True)  # our mark, on mitmproxy's object

    def _silent_too_long(self, client: Any) -> None:
        """The header timeout of a client that has not sent a byte (once it has, the HTTP/1
        server's own timer in :mod:`chaoskit.proxy.guards` takes over)."""
        self._silent.pop(client.id, None)
        silent = client.id in self._open and not spoke(client)
        if silent and codec_limits.close_client(client, codec_limits.REQUEST_HEADER_TIMEOUT):
            self.stats.inc("http.downstream_rq_header_timeout")
            logger.info("chaoskit: 408 request header timeout (nothing sent); connection closed")

    def client_disconnected(self, client: Any) -> None:
        timer = self._silent.pop(client.id, None)
        if timer is not None:
            timer.cancel()
        if client.id not in self._open:
            return  # refused, or connected before this addon ran
        self._open.discard(client.id)
        if self._shedding:
            cap = self.max_connections
            if len(self._open) <= cap - max(1, int(cap * RECOVERY_FRACTION)):
                self._stop_shedding(cap)

    # -- the log lines: one when shedding starts, one when it ends, not one per connection ----

    def _start_shedding(self, cap: int) -> None:
        self._shedding = True
        now = self.clock.monotonic()
        self._said_so = self._last_said is None or now - self._last_said >= LOG_QUIET_SECONDS
        if self._said_so:
            self._last_said = now
            logger.warning(
                "chaoskit: connection limit reached (max_connections %d): closing new "
                "connections until some close (counted in listener.downstream_cx_overflow)",
                cap,
            )

    def _stop_shedding(self, cap: int) -> None:
        self._shedding = False
        if self._said_so:  # else it flapped within the quiet period: both lines left out
            logger.warning(
                "chaoskit: accepting connections again (%d open, max_connections %d); "
                "%d refused meanwhile",
                len(self._open), cap, self._refused_since_said,
            )  # fmt: skip
            self._refused_since_said = 0
