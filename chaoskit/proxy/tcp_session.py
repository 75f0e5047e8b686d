"""One TCP connection through a TCP listener, from accept to record: Envoy's TCP proxy
(envoy/source/common/tcp_proxy/tcp_proxy.cc, ``establishUpstreamConnection``) for one
sidecar outbound listener.

In order, each failure closing the client's connection with Envoy's flag:

1. route (:func:`chaoskit.routing.tcp.tcp_route`, one weighted draw per connection from the
   seeded ``tcp-route`` stream): the listener's service is gone ⇒ ``NR``; the destination has
   no cluster ⇒ ``NC``; REGISTRY_ONLY for a service the caller cannot see ⇒ ``UH``
   (``BlackHoleCluster``); ALLOW_ANY ⇒ straight to the address as dialled
   (``PassthroughCluster``);
2. ``connectionPool.tcp.maxConnections``: a connection beyond it is closed ⇒ ``UO``
   (``upstream_cx_overflow``; Envoy checks the connection limit before asking the pool);
3. endpoint: the cluster's load balancer over its healthy endpoints (consistent hashing on
   ``useSourceIp`` only: a connection has no headers) ⇒ none ``UH``;
4. the TCP UpstreamFaults that fire for this connection (:mod:`chaoskit.faults.tcp`);
5. connect within ``connectTimeout`` (DestinationRule, else the mesh's 10 s) ⇒ ``UF``;
6. relay (:mod:`.tcp_relay`) until both sides closed, a fault ended it, or an error.

The record is written when the connection ends, with its bytes (``%BYTES_RECEIVED%`` from the
client, ``%BYTES_SENT%`` to it), duration, flags, cluster, endpoint and faults; the counters
are Envoy's (``cluster.<name>.upstream_cx_*``, ``tcp.downstream_cx_*``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from chaoskit.clusters import Cluster
from chaoskit.config.destination_rule import TCPSettings
from chaoskit.faults.tcp.plan import NO_TCP_FAULT, ConnectionPlan, plan_connection
from chaoskit.loadbalancing import hash_key_for
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.proxy.addresses import reaches
from chaoskit.proxy.identity import workload
from chaoskit.proxy.pipeline import Pipeline
from chaoskit.proxy.tcp_connection import (
    ENDINGS,
    STATS,
    TcpConnection,
    TcpTarget,
    socket_address,
    to_record,
)
from chaoskit.proxy.tcp_relay import relay
from chaoskit.records import AttemptOutcome, AttemptRecord, Record, ResponseFlag
from chaoskit.routing.decision import ClusterKey
from chaoskit.routing.request import RequestInfo
from chaoskit.routing.tcp import (
    TcpBlackHole,
    TcpClusterNotFound,
    TcpForward,
    TcpNoRoute,
    TcpPassthrough,
    tcp_route,
)

logger = logging.getLogger("chaoskit")

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class TcpProxy:
    """Serves every TCP listener of one proxy; lives on the proxy loop (not thread-safe)."""

    def __init__(self, pipeline: Pipeline, on_record: list[Callable[[Record], None]]) -> None:
        self.pipeline = pipeline
        #: called with each finished record (the access log, the same list as HTTP's)
        self.on_record = on_record
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Where the TCP listeners listen (kept by :class:`~.tcp_listeners.TcpListeners`).
        self.own: set[tuple[str, int]] = set()

    @property
    def active(self) -> int:
        """Connections open now."""
        return len(self._tasks)

    async def handle(
        self, target: TcpTarget, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one accepted connection (asyncio's ``start_server`` callback)."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        s = self.pipeline.services
        conn = TcpConnection(
            target, workload(s.mesh, target.workload), s.clock.wall(), s.clock.monotonic(),
            socket_address(writer, "sockname"), socket_address(writer, "peername"),
        )  # fmt: skip
        try:
            await self._serve(conn, (reader, writer))
        except asyncio.CancelledError:
            conn.notes.append("the proxy stopped while the connection was open")
            writer.transport.abort()
            raise
        except Exception:
            logger.exception("chaoskit TCP proxy error on a connection to %s", target)
            conn.notes.append("chaoskit internal error: connection closed")
            writer.transport.abort()
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()
            self._finish(conn)

    async def close(self) -> None:
        """Abort every open connection (the proxy is stopping); each still gets its record."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # -- the steps ----------------------------------------------------------------------------

    async def _serve(self, conn: TcpConnection, client: Stream) -> None:
        s = self.pipeline.services
        decision = tcp_route(
            s.mesh, conn.target.host, conn.target.port, conn.source, s.stream("tcp-route")
        )
        match decision:
            case TcpForward():
                await self._forward(conn, client, decision.cluster)
            case TcpPassthrough():
                conn.host, conn.cluster = decision.host, decision.cluster_name
                host = UpstreamHost(decision.host, decision.port)
                timeout = s.mesh.defaults.connect_timeout
                await self._connect_and_relay(conn, client, host, timeout, NO_TCP_FAULT, None)
            case TcpBlackHole():
                conn.cluster = decision.cluster_name
                self._refuse(conn, ResponseFlag.UH, "REGISTRY_ONLY: the service is not visible")
            case TcpClusterNotFound():
                conn.host, conn.cluster = decision.cluster.host, decision.cluster.name
                self._refuse(conn, ResponseFlag.NC, f"no cluster {decision.cluster.name}")
            case TcpNoRoute():
                s.stats.inc("tcp.downstream_cx_no_route")
                self._refuse(conn, ResponseFlag.NR, f"no TCP service {conn.target.host}:"
                             f"{conn.target.port} in the configuration")  # fmt: skip

    def _refuse(self, conn: TcpConnection, flag: ResponseFlag, note: str) -> None:
        """Close the client without an upstream (the caller closes the socket)."""
        conn.flags.add(flag)
        conn.notes.append(note)

    async def _forward(self, conn: TcpConnection, client: Stream, key: ClusterKey) -> None:
        s = self.pipeline.services
        conn.host, conn.cluster = key.host, key.name
        cluster = s.clusters.get(key, conn.source.name)
        if cluster is None:
            self._refuse(conn, ResponseFlag.NC, f"no cluster {key.name}")
            return
        limit = cluster.breaker.max_connections
        if cluster.active_requests >= limit:
            s.stats.cluster_inc(cluster.name, "upstream_cx_overflow")
            conn.attempts.append(AttemptRecord(1, "", AttemptOutcome.OVERFLOW))
            note = f"maxConnections ({limit}) of {cluster.name} reached: connection closed"
            self._refuse(conn, ResponseFlag.UO, note)
            return
        request = self._request(conn)
        host = self._choose(cluster, conn, request)
        if host is None:
            s.stats.cluster_inc(cluster.name, "upstream_cx_none_healthy")
            self._refuse(conn, ResponseFlag.UH, f"no healthy endpoint in {cluster.name}")
            return
        plan = NO_TCP_FAULT
        if s.mesh.upstream_faults:
            plan = plan_connection(
                s.mesh.upstream_faults, s.fault_states, host_fqdn=key.host, subset=key.subset,
                endpoint=host, request=request, now=s.clock.monotonic(),
                rng_for=lambda ref: s.stream(f"upstreamfault/{ref}"),
            )  # fmt: skip
            if plan.injected:
                s.stats.inc("upstream_fault.injected")
        host.active_requests += 1
        cluster.active_requests += 1
        s.stats.cluster_gauge(cluster.name, "upstream_cx_active", cluster.active_requests)
        try:
            timeout = cluster.connect_timeout
            await self._connect_and_relay(conn, client, host, timeout, plan, cluster)
        finally:
            host.active_requests -= 1
            cluster.active_requests -= 1
            s.stats.cluster_gauge(cluster.name, "upstream_cx_active", cluster.active_requests)

    @staticmethod
    def _request(conn: TcpConnection) -> RequestInfo:
        """The connection as fault targeting and hashing see it: its caller, service port and
        client address (no method, path or headers)."""
        t = conn.target
        client_ip = conn.downstream_remote.rpartition(":")[0].strip("[]")
        return RequestInfo(
            "", "tcp", f"{t.host}:{t.port}", "", port=t.port, source=conn.source,
            client_address=client_ip,
        )  # fmt: skip

    def _choose(
        self, cluster: Cluster, conn: TcpConnection, request: RequestInfo
    ) -> UpstreamHost | None:
        if cluster.original_destination:
            return UpstreamHost(conn.target.host, conn.target.port)
        hosts = cluster.healthy_hosts(self.pipeline.services.clock.monotonic())
        if not hosts:
            return None
        ch = cluster.consistent_hash
        key = hash_key_for(ch, request) if ch is not None and ch.use_source_ip else None
        return cluster.lb.choose(hosts, cluster.rng, key)

    async def _connect_and_relay(
        self,
        conn: TcpConnection,
        client: Stream,
        host: UpstreamHost,
        timeout: float,
        plan: ConnectionPlan,
        cluster: Cluster | None,
    ) -> None:
        s = self.pipeline.services
        conn.upstream_host = host.key
        stat = cluster.name if cluster is not None else conn.cluster
        t0 = s.clock.monotonic()

        def attempt(outcome: AttemptOutcome) -> None:
            duration = s.clock.monotonic() - t0
            conn.attempts.append(AttemptRecord(1, host.key, outcome, None, duration, plan.faults))

        loop = self._own_listener(host)
        if loop is not None:
            s.stats.inc("tcp.downstream_cx_loop")
            conn.notes.append(f"{host.key} is this proxy's own {loop} listener: connection "
                              "closed (it would loop)")  # fmt: skip
            attempt(AttemptOutcome.LOOP)
            return
        s.stats.cluster_inc(stat, "upstream_cx_total")
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(host.address, host.port), timeout
            )
        except (OSError, TimeoutError) as e:
            timed_out = isinstance(e, TimeoutError)
            s.stats.cluster_inc(stat, "upstream_cx_connect_fail")
            if timed_out:
                s.stats.cluster_inc(stat, "upstream_cx_connect_timeout")
            why = f"timed out after {timeout:g}s" if timed_out else (e.strerror or str(e))
            conn.notes.append(f"connect to {host.key} failed: {why}")
            conn.flags.add(ResponseFlag.UF)
            attempt(AttemptOutcome.CONNECT_FAILURE)
            return
        conn.upstream_local = socket_address(upstream[1], "sockname")
        try:
            tcp = _tcp_settings(cluster)
            ended = await relay(
                client, upstream, plan, conn.counts, sleep=s.sleep, now=s.clock.monotonic,
                idle_timeout=tcp.effective_idle_timeout, max_duration=tcp.max_connection_duration,
            )  # fmt: skip
        except BaseException:
            upstream[1].transport.abort()
            attempt(AttemptOutcome.CONNECTED)
            raise
        attempt(AttemptOutcome.CONNECTED)
        note = ENDINGS.get(ended)
        if note is not None:
            conn.notes.append(note)
        if ended in STATS:
            s.stats.inc(STATS[ended])
        counts = conn.counts
        s.stats.cluster_inc(stat, "upstream_cx_tx_bytes_total", counts.to_upstream)
        s.stats.cluster_inc(stat, "upstream_cx_rx_bytes_total", counts.from_upstream)

    def _own_listener(self, host: UpstreamHost) -> str | None:
        """What kind of this proxy's own listener ``host`` is, if it is one: a TCP listener
        (an endpoint port mapped onto itself, ``--tcp redis:6379=6379`` with redis down) or
        one of the HTTP ones (:mod:`chaoskit.proxy.loops`)."""
        if any(port == host.port and reaches(host.address, bound) for bound, port in self.own):
            return "TCP"
        kind = self.pipeline.loops.own_listener(host.address, host.port)
        return kind.described if kind is not None else None

    # -- the record -----------------------------------------------------------------------------

    def _finish(self, conn: TcpConnection) -> None:
        """Write the connection's record and counters; a failure here is logged only."""
        try:
            s = self.pipeline.services
            log = self.pipeline.records
            record = to_record(conn, log.next_seq(), s.clock.monotonic())
            log.append(record)
            s.stats.inc("tcp.downstream_cx_total")
            s.stats.inc("tcp.downstream_cx_rx_bytes_total", record.bytes_received)
            s.stats.inc("tcp.downstream_cx_tx_bytes_total", record.bytes_sent)
            for callback in self.on_record:
                callback(record)
        except Exception:
            logger.exception("chaoskit could not record a TCP connection to %s", conn.target)


def _tcp_settings(cluster: Cluster | None) -> TCPSettings:
    """The cluster's ``connectionPool.tcp`` (defaults for ``PassthroughCluster``)."""
    pool = cluster.policy.connection_pool if cluster is not None else None
    return pool.effective_tcp if pool is not None else TCPSettings()
