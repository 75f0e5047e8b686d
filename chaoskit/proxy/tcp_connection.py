"""One TCP connection through a TCP listener as chaoskit keeps it: the service port the
listener stands for (:class:`TcpTarget`), what is known of the connection while it is open
(:class:`TcpConnection`), and the record it becomes (:func:`to_record`). The session itself is
:mod:`chaoskit.proxy.tcp_session`."""

from __future__ import annotations

import asyncio
import dataclasses

from chaoskit.proxy.tcp_relay import Counts, End
from chaoskit.records import TCP, AttemptRecord, Record, order_flags
from chaoskit.routing.request import Workload


@dataclasses.dataclass(frozen=True, slots=True)
class TcpTarget:
    """What a TCP listener stands for: a service port, as one workload's sidecar reaches it
    (``workload`` empty: the anonymous caller)."""

    host: str
    port: int
    workload: str = ""

    @classmethod
    def parse(cls, text: str) -> TcpTarget:
        """``redis:6379`` or ``productpage@redis:6379``; :class:`ValueError` otherwise."""
        name, at, rest = text.rpartition("@")
        host, sep, port = rest.rpartition(":")
        valid_port = port.isdigit() and 0 < int(port) <= 65535
        if not (sep and host and valid_port) or (at and not name):
            raise ValueError(
                f"{text!r} is not [WORKLOAD@]HOST:PORT (e.g. redis:6379 or productpage@redis:6379)"
            )
        return cls(host.lower(), int(port), name)

    def __str__(self) -> str:
        who = f"{self.workload}@" if self.workload else ""
        return f"{who}{self.host}:{self.port}"


def socket_address(writer: asyncio.StreamWriter, which: str) -> str:
    peer = writer.get_extra_info(which)
    if not isinstance(peer, tuple) or len(peer) < 2:
        return ""
    host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
    return f"{host}:{peer[1]}"


@dataclasses.dataclass(slots=True)
class TcpConnection:
    """One connection in flight: what its record will say."""

    target: TcpTarget
    source: Workload
    start_wall: float
    t0: float
    downstream_local: str
    downstream_remote: str
    flags: set[str] = dataclasses.field(default_factory=set)
    host: str = ""
    cluster: str = ""
    upstream_host: str = ""
    upstream_local: str = ""
    attempts: list[AttemptRecord] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    counts: Counts = dataclasses.field(default_factory=Counts)


def to_record(conn: TcpConnection, seq: int, now: float) -> Record:
    """The record of ``conn`` as it ended ``now`` (the proxy clock)."""
    t = conn.target
    return Record(
            seq=seq, request_id="", start=conn.start_wall,
            duration=now - conn.t0, listener="mesh",
            source=conn.source.name, method="", scheme="tcp",
            authority=f"{t.host}:{t.port}", path="", status=0,
            flags=order_flags(conn.flags), host=conn.host, cluster=conn.cluster,
            upstream_host=conn.upstream_host, attempts=tuple(conn.attempts),
            notes=tuple(conn.notes), bytes_received=conn.counts.from_client,
            bytes_sent=conn.counts.to_client, protocol=TCP,
            downstream_local_address=conn.downstream_local,
            downstream_remote_address=conn.downstream_remote,
            upstream_local_address=conn.upstream_local,
    )  # fmt: skip


#: What a record's notes say when a fault or a DestinationRule limit ended the relay.
ENDINGS = {
    End.LIMIT: "limitData closed the connection (UpstreamFault)",
    End.RESET: "resetPeer reset the client's connection (UpstreamFault)",
    End.CLOSED: "timeout closed the connection (UpstreamFault)",
    End.IDLE: "connectionPool.tcp.idleTimeout closed the idle connection",
    End.MAX_DURATION: "connectionPool.tcp.maxConnectionDuration closed the connection",
}
#: Envoy's TCP proxy counters for the limits (``tcp.<stat_prefix>.idle_timeout``, ...).
STATS = {
    End.IDLE: "tcp.idle_timeout",
    End.MAX_DURATION: "tcp.max_downstream_connection_duration",
}
