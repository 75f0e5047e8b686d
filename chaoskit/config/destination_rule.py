"""``DestinationRule`` and its parts, named after istio/api's ``destination_rule.proto`` messages.

Models keep ``None`` wherever Istio tells "unset" from a value, because it matters: no
``outlierDetection`` block means no ejection at all, while a circuit-breaker limit of 0 means
unlimited. ``DEFAULT_*`` constants and ``effective_*`` properties give what Envoy really runs
with (istio/istio ``pilot/pkg/networking/core/cluster_traffic_policy.go``), and
:func:`effective_policy` composes top-level, port-level and subset policies as Istio does
(``MergeTrafficPolicy`` in ``pilot/pkg/model/destination_rule.go``), so the proxy never re-derives
either. Parsers apply the single-resource rules of Istio's webhook
(``pkg/config/validation/validation.go``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import ClassVar, TypeVar

from chaoskit.config.fields import UINT32_MAX, Fields
from chaoskit.config.hosts import check_host, expand, is_dns1123_label
from chaoskit.config.resource import Metadata, Resource
from chaoskit.config.service_entry import check_export_to, check_labels
from chaoskit.config.yamlsource import Location

_T = TypeVar("_T")

#: What Istio writes for a circuit-breaker limit that is unset or 0 (2^32−1): no limit.
UNLIMITED = UINT32_MAX
SIMPLE_LB = ("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")
H2_UPGRADE_POLICIES = ("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE")
TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
_HASH_KEYS = ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName")
_COMPONENTS = ("loadBalancer", "connectionPool", "outlierDetection", "tls")
_POLICY_FIELDS = (*_COMPONENTS, "portLevelSettings", "tunnel", "proxyProtocol", "retryBudget")
_MAGLEV_LIMIT = 5000011


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPCookie:
    """Cookie hash key; with ``ttl`` set Envoy creates the cookie when absent (0 = session)."""

    name: str
    path: str | None = None
    ttl: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class ConsistentHashLB:
    """Soft affinity: a request without the hash key goes to a random host (Envoy's ring hash
    and Maglev, ``docs/root/intro/arch_overview/upstream/load_balancing/load_balancers.rst``)."""

    DEFAULT_MINIMUM_RING_SIZE: ClassVar[int] = 1024
    DEFAULT_TABLE_SIZE: ClassVar[int] = 65537

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool = False
    http_query_parameter_name: str | None = None
    #: ``"RING_HASH"`` (Istio's default) or ``"MAGLEV"``.
    algorithm: str = "RING_HASH"
    #: ``ringHash.minimumRingSize``, or the deprecated top-level ``minimumRingSize``.
    minimum_ring_size: int | None = None
    #: ``maglev.tableSize``.
    table_size: int | None = None

    @property
    def effective_minimum_ring_size(self) -> int:
        return self.minimum_ring_size or self.DEFAULT_MINIMUM_RING_SIZE

    @property
    def effective_table_size(self) -> int:
        return self.table_size or self.DEFAULT_TABLE_SIZE


@dataclasses.dataclass(frozen=True, slots=True)
class Warmup:
    """Envoy slow start: new endpoints ramp their weight up over ``duration`` seconds."""

    duration: float
    minimum_percent: float = 10.0
    aggression: float = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class LoadBalancerSettings:
    """``simple`` as written, but the deprecated ``LEAST_CONN`` is stored as ``LEAST_REQUEST``."""

    DEFAULT_SIMPLE: ClassVar[str] = "LEAST_REQUEST"

    simple: str | None = None
    consistent_hash: ConsistentHashLB | None = None
    warmup: Warmup | None = None

    @property
    def effective_simple(self) -> str:
        """What runs when no consistent hash is set: unset and UNSPECIFIED mean LEAST_REQUEST."""
        if self.simple is None or self.simple == "UNSPECIFIED":
            return self.DEFAULT_SIMPLE
        return self.simple


@dataclasses.dataclass(frozen=True, slots=True)
class TCPSettings:
    """``connectionPool.tcp``; a limit that is unset or 0 is :data:`UNLIMITED` in effect."""

    DEFAULT_CONNECT_TIMEOUT: ClassVar[float] = 10.0  # the mesh connectTimeout
    DEFAULT_IDLE_TIMEOUT: ClassVar[float] = 3600.0

    max_connections: int | None = None
    connect_timeout: float | None = None
    max_connection_duration: float | None = None
    #: ``0.0`` (written ``0s``) switches the idle timeout off.
    idle_timeout: float | None = None

    @property
    def effective_max_connections(self) -> int:
        return self.max_connections or UNLIMITED

    @property
    def effective_connect_timeout(self) -> float:
        return self.connect_timeout or self.DEFAULT_CONNECT_TIMEOUT

    @property
    def effective_idle_timeout(self) -> float | None:
        """Seconds, or ``None`` when ``0s`` switched it off."""
        return self.DEFAULT_IDLE_TIMEOUT if self.idle_timeout is None else self.idle_timeout or None


@dataclasses.dataclass(frozen=True, slots=True)
class HTTPSettings:
    """``connectionPool.http``; a limit that is unset or 0 is :data:`UNLIMITED` in effect."""

    DEFAULT_IDLE_TIMEOUT: ClassVar[float] = 3600.0
    DEFAULT_H2_UPGRADE_POLICY: ClassVar[str] = "DO_NOT_UPGRADE"  # the mesh default

    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: float | None = None
    h2_upgrade_policy: str | None = None
    use_client_protocol: bool = False
    max_concurrent_streams: int | None = None

    @property
    def effective_http1_max_pending_requests(self) -> int:
        return self.http1_max_pending_requests or UNLIMITED

    @property
    def effective_http2_max_requests(self) -> int:
        return self.http2_max_requests or UNLIMITED

    @property
    def effective_max_requests_per_connection(self) -> int:
        return self.max_requests_per_connection or UNLIMITED

    @property
    def effective_max_retries(self) -> int:
        """Istio lifts Envoy's default of 3 concurrent retries to unlimited."""
        return self.max_retries or UNLIMITED

    @property
    def effective_idle_timeout(self) -> float:
        return self.idle_timeout or self.DEFAULT_IDLE_TIMEOUT

    @property
    def effective_h2_upgrade_policy(self) -> str:
        if self.h2_upgrade_policy is None or self.h2_upgrade_policy == "DEFAULT":
            return self.DEFAULT_H2_UPGRADE_POLICY
        return self.h2_upgrade_policy


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionPoolSettings:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None

    @property
    def effective_tcp(self) -> TCPSettings:
        return self.tcp or TCPSettings()

    @property
    def effective_http(self) -> HTTPSettings:
        return self.http or HTTPSettings()


@dataclasses.dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Passive health checking, per Istio's ``applyOutlierDetection``.

    The effective values hold only when the block is present; a threshold of 0 means that
    detector is off.
    """

    DEFAULT_CONSECUTIVE_5XX_ERRORS: ClassVar[int] = 5
    DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURES: ClassVar[int] = 5
    DEFAULT_INTERVAL: ClassVar[float] = 10.0
    DEFAULT_BASE_EJECTION_TIME: ClassVar[float] = 30.0
    DEFAULT_MAX_EJECTION_PERCENT: ClassVar[int] = 10

    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    consecutive_local_origin_failures: int | None = None
    split_external_local_origin_errors: bool = False
    interval: float | None = None
    base_ejection_time: float | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None
    #: ``outlierDetectionHttpErrorCodes``: when set, only these statuses count as errors.
    http_error_codes: tuple[int, ...] = ()

    @property
    def effective_consecutive_5xx_errors(self) -> int:
        c = self.consecutive_5xx_errors
        return self.DEFAULT_CONSECUTIVE_5XX_ERRORS if c is None else c

    @property
    def effective_consecutive_gateway_errors(self) -> int:
        """Off unless set: Envoy counts gateway errors but does not enforce them by default."""
        return self.consecutive_gateway_errors or 0

    @property
    def effective_consecutive_local_origin_failures(self) -> int:
        """Counted only in split mode; Istio passes on a value only when it is above 0."""
        if not self.split_external_local_origin_errors:
            return 0
        failures = self.consecutive_local_origin_failures
        return failures or self.DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURES

    @property
    def effective_interval(self) -> float:
        return self.interval or self.DEFAULT_INTERVAL

    @property
    def effective_base_ejection_time(self) -> float:
        return self.base_ejection_time or self.DEFAULT_BASE_EJECTION_TIME

    @property
    def effective_max_ejection_percent(self) -> int:
        """Istio drops a 0, so Envoy's 10% applies."""
        return self.max_ejection_percent or self.DEFAULT_MAX_EJECTION_PERCENT

    @property
    def effective_min_health_percent(self) -> int:
        """Envoy's panic threshold; Istio always writes it, so 0 (panic mode off) by default."""
        return self.min_health_percent or 0


@dataclasses.dataclass(frozen=True, slots=True)
class ClientTLSSettings:
    """``SIMPLE``/``MUTUAL`` make the proxy speak TLS to endpoints (without verifying them or
    presenting client certificates: see docs/istio-compatibility.md); the rest is checked only."""

    mode: str = "DISABLE"
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RetryBudget:
    """Envoy's retry budget, which replaces the static ``maxRetries`` limit."""

    DEFAULT_PERCENT: ClassVar[float] = 20.0
    DEFAULT_MIN_RETRY_CONCURRENCY: ClassVar[int] = 3

    percent: float | None = None
    min_retry_concurrency: int | None = None
    budget_interval: float | None = None

    @property
    def effective_percent(self) -> float:
        return self.DEFAULT_PERCENT if self.percent is None else self.percent

    @property
    def effective_min_retry_concurrency(self) -> int:
        return self.min_retry_concurrency or self.DEFAULT_MIN_RETRY_CONCURRENCY


@dataclasses.dataclass(frozen=True, slots=True)
class PortTrafficPolicy:
    """A ``portLevelSettings`` entry; ``port`` is ``None`` only when the YAML was invalid."""

    port: int | None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """One ``trafficPolicy``; ``tunnel`` and ``proxyProtocol`` are accepted, not emulated."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    #: ``None`` means no ejection at all, not "the defaults".
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    retry_budget: RetryBudget | None = None

    @property
    def effective_load_balancer(self) -> LoadBalancerSettings:
        return self.load_balancer or LoadBalancerSettings()

    @property
    def effective_connection_pool(self) -> ConnectionPoolSettings:
        return self.connection_pool or ConnectionPoolSettings()

    def port_policy(self, port: int | None) -> PortTrafficPolicy | None:
        """The first entry for ``port``: Istio stops at the first match."""
        matching = (p for p in self.port_level_settings if p.port is not None and p.port == port)
        return next(matching, None)


@dataclasses.dataclass(frozen=True, slots=True)
class Subset:
    """Endpoints whose labels are a superset of ``labels`` (no labels: every endpoint)."""

    name: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DestinationRule(Resource):
    KIND = "DestinationRule"

    host: str = ""
    #: ``host`` expanded with the rule's namespace (istio/istio ``ResolveShortnameToFQDN``).
    fqdn_host: str = ""
    traffic_policy: TrafficPolicy | None = None
    #: A duplicate name is reported and dropped, so the first definition wins as in Istio.
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    #: ``workloadSelector.matchLabels``; ``None`` when the rule applies to every client.
    workload_selector: Mapping[str, str] | None = None

    def subset(self, name: str) -> Subset | None:
        return next((s for s in self.subsets if s.name == name), None)


def effective_policy(
    dr: DestinationRule | None, port: int | None, subset: str | None
) -> TrafficPolicy:
    """The policy Istio gives the cluster for (port, subset): ``MergeSubsetTrafficPolicy``.

    A matching port-level entry replaces the whole policy: what it omits reverts to defaults
    (the policy-wide ``retryBudget`` is dropped too). A subset policy then replaces each
    component it sets; if it has a matching port-level entry, all four components come from
    that entry, even unset ones. The result has no ``port_level_settings``.
    """
    top = dr.traffic_policy if dr is not None else None
    base = _at_port(top, port)[0] if top is not None else TrafficPolicy()
    chosen = dr.subset(subset) if dr is not None and subset is not None else None
    if chosen is None or chosen.traffic_policy is None:
        return base
    sub, whole = _at_port(chosen.traffic_policy, port)

    def pick(own: _T | None, inherited: _T | None) -> _T | None:
        return own if whole or own is not None else inherited

    return TrafficPolicy(
        load_balancer=pick(sub.load_balancer, base.load_balancer),
        connection_pool=pick(sub.connection_pool, base.connection_pool),
        outlier_detection=pick(sub.outlier_detection, base.outlier_detection),
        tls=pick(sub.tls, base.tls),
        retry_budget=sub.retry_budget if sub.retry_budget is not None else base.retry_budget,
    )


def _at_port(policy: TrafficPolicy, port: int | None) -> tuple[TrafficPolicy, bool]:
    if (p := policy.port_policy(port)) is not None:
        return TrafficPolicy(p.load_balancer, p.connection_pool, p.outlier_detection, p.tls), True
    return dataclasses.replace(policy, port_level_settings=()), False


# -- parsers ---------------------------------------------------------------------------------


def _opt(f: Fields, key: str, parse: Callable[[Fields], _T]) -> _T | None:
    sub = f.obj(key)
    return None if sub is None else parse(sub)


def _count(f: Fields, key: str, what: str) -> int | None:
    """An int32 limit, with Istio's "must be non-negative" rule."""
    value = f.int(key, minimum=None)
    if value is not None and value < 0:
        f.error(key, f"{what} must be non-negative")
        return None
    return value


def _is_prime(x: int) -> bool:
    """Envoy's test, which Istio copies (it calls 1 prime too)."""
    if 0 < x < 4:
        return True
    return x % 2 == 1 and all(x % d for d in range(3, math.isqrt(x) + 1, 2))


def parse_http_cookie(f: Fields) -> HTTPCookie:
    name = f.str("name")
    path = f.str("path")
    ttl = f.duration("ttl", istio_rules=False)
    attributes: dict[str, str] = {}
    for af in f.objs("attributes"):
        attr, value = af.str("name"), af.str("value")
        af.done()
        if not attr:
            af.error("name", "cookie attribute name cannot be empty")
        elif attr in attributes:
            af.error("name", f"duplicate cookie attribute name: {attr}")
        else:
            attributes[attr] = value or ""
    f.done()
    if not name:
        f.error("name", "name required for HttpCookie")
    return HTTPCookie(name or "", path, ttl, tuple(attributes.items()))


def parse_consistent_hash(f: Fields) -> ConsistentHashLB:
    header = f.str("httpHeaderName")
    cookie = _opt(f, "httpCookie", parse_http_cookie)
    source_ip = bool(f.bool("useSourceIp"))
    query = f.str("httpQueryParameterName")
    ring = table = None
    if (rf := f.obj("ringHash")) is not None:
        ring = rf.int("minimumRingSize", minimum=0, maximum=None) or 0
        rf.done()
    if (mf := f.obj("maglev")) is not None:
        table = mf.int("tableSize", minimum=0, maximum=None) or 0
        mf.done()
        if table == 0:
            mf.error("tableSize", "tableSize must be set for maglev")
        if table >= _MAGLEV_LIMIT:
            mf.error("tableSize", f"tableSize must be less than {_MAGLEV_LIMIT} for maglev")
        if table and not _is_prime(table):
            mf.error("tableSize", "tableSize must be a prime number for maglev")
    legacy = f.int("minimumRingSize", minimum=0, maximum=None)
    f.done()
    keys = [k for k in _HASH_KEYS if f.has(k)]
    if len(keys) > 1:
        f.error(None, f"only one hash key may be set, not {', '.join(keys)}")
    elif not keys:
        f.warn(
            None,
            "no hash key (httpHeaderName, httpCookie, useSourceIp or "
            "httpQueryParameterName) is set: requests go to random hosts",
        )
    if ring is not None and table is not None:
        f.error(None, "only one of ringHash, maglev may be set")
    if legacy:
        f.warn(
            "minimumRingSize",
            "consistent hash MinimumRingSize is deprecated, "
            "use ConsistentHashLB's RingHash configuration instead",
        )
        if ring is not None or table is not None:
            f.error(
                "minimumRingSize", "only one of MinimumRingSize or Maglev/Ringhash can be specified"
            )
    return ConsistentHashLB(
        http_header_name=header,
        http_cookie=cookie,
        use_source_ip=source_ip,
        http_query_parameter_name=query,
        algorithm="RING_HASH" if table is None else "MAGLEV",
        minimum_ring_size=ring or legacy or None,
        table_size=table or None,
    )


def parse_warmup(f: Fields) -> Warmup | None:
    duration = f.duration("duration", required=True)
    minimum = f.number("minimumPercent")
    aggression = f.number("aggression")
    f.done()
    if minimum is not None and not 0 <= minimum <= 100:
        f.error("minimumPercent", "minimumPercent value should be between 0 and 100")
    if aggression is not None and aggression <= 0:
        f.error("aggression", "aggression should be greater than 0")
    if duration is None:
        return None
    return Warmup(duration, 10.0 if minimum is None else minimum, aggression or 1.0)


def parse_load_balancer(f: Fields) -> LoadBalancerSettings:
    simple = f.enum("simple", SIMPLE_LB)
    if simple == "LEAST_CONN":
        f.warn("simple", "LEAST_CONN is deprecated; Istio treats it as LEAST_REQUEST")
        simple = "LEAST_REQUEST"
    consistent = _opt(f, "consistentHash", parse_consistent_hash)
    warmup = _opt(f, "warmup", parse_warmup)
    legacy = f.duration("warmupDurationSecs")
    f.accept("localityLbSetting", "zoneAwareLbSetting")  # localities are not emulated
    f.done()
    if f.has("simple") and f.has("consistentHash"):
        f.error(None, "only one of simple, consistentHash may be set")
    if f.has("localityLbSetting") and f.has("zoneAwareLbSetting"):
        f.error(None, "only one of localityLbSetting and zoneAwareLbSetting can be set")
    if f.has("warmup") and f.has("warmupDurationSecs"):
        f.error(None, "only one of warmupDurationSecs or warmup can be set")
    elif legacy is not None:
        f.warn("warmupDurationSecs", "warmupDurationSecs is deprecated; use warmup.duration")
        warmup = Warmup(legacy)
    if warmup is not None and (consistent or simple in ("RANDOM", "PASSTHROUGH")):
        f.warn(None, "warmup only applies to ROUND_ROBIN and LEAST_REQUEST; it is ignored here")
    return LoadBalancerSettings(simple=simple, consistent_hash=consistent, warmup=warmup)


def parse_tcp(f: Fields) -> TCPSettings:
    max_connections = _count(f, "maxConnections", "max connections")
    connect = f.duration("connectTimeout")
    max_duration = f.duration("maxConnectionDuration")
    idle = f.duration("idleTimeout", allow_zero=True)
    if (ka := f.obj("tcpKeepalive")) is not None:
        ka.int("probes", minimum=0, maximum=UINT32_MAX)
        ka.duration("time")
        ka.duration("interval")
        ka.done()
    f.done()
    return TCPSettings(max_connections, connect, max_duration, idle)


def parse_http(f: Fields) -> HTTPSettings:
    pending = _count(f, "http1MaxPendingRequests", "http1 max pending requests")
    requests = _count(f, "http2MaxRequests", "http2 max requests")
    per_connection = _count(f, "maxRequestsPerConnection", "max requests per connection")
    retries = _count(f, "maxRetries", "max retries")
    idle = f.duration("idleTimeout")
    upgrade = f.enum("h2UpgradePolicy", H2_UPGRADE_POLICIES)
    client_protocol = bool(f.bool("useClientProtocol"))
    streams = _count(f, "maxConcurrentStreams", "max concurrent streams")
    if (ka := f.obj("http2KeepAlive")) is not None:
        for key in ("interval", "timeout"):
            if ka.duration(key) is None and not ka.has(key):
                ka.error(key, f"http2 keepalive {key} is required")
        ka.done()
    f.done()
    if upgrade == "UPGRADE" and client_protocol:
        f.error(
            "useClientProtocol",
            "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
        )
    return HTTPSettings(
        pending, requests, per_connection, retries, idle, upgrade, client_protocol, streams
    )


def parse_connection_pool(f: Fields) -> ConnectionPoolSettings:
    tcp = _opt(f, "tcp", parse_tcp)
    http = _opt(f, "http", parse_http)
    f.done()
    if not f.has("tcp") and not f.has("http"):
        f.error(None, "connection pool must have at least one field")
    return ConnectionPoolSettings(tcp=tcp, http=http)


def parse_outlier_detection(f: Fields) -> OutlierDetection:
    c5xx = f.int("consecutive5xxErrors", minimum=0, maximum=UINT32_MAX)
    gateway = f.int("consecutiveGatewayErrors", minimum=0, maximum=UINT32_MAX)
    local = f.int("consecutiveLocalOriginFailures", minimum=0, maximum=UINT32_MAX)
    split = bool(f.bool("splitExternalLocalOriginErrors"))
    interval = f.duration("interval")
    base = f.duration("baseEjectionTime")
    percents: dict[str, int | None] = {}
    for key in ("maxEjectionPercent", "minHealthPercent"):
        value = percents[key] = f.int(key, minimum=None)
        if value is not None and not 0 <= value <= 100:
            f.error(key, f"percentage {value} is not in range 0..100")
            percents[key] = None
    codes = []
    for path, item, loc in f.list("outlierDetectionHttpErrorCodes"):
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            codes.append(item)
        else:
            f.ctx.issues.error(loc, f.ctx.resource, path, f"{item!r} is not a status in [100, 599]")
    if f.int("consecutiveErrors", minimum=None):
        f.warn(
            "consecutiveErrors",
            "outlier detection consecutive errors is deprecated and "
            "ignored, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        )
    f.done()
    if local and not split:
        f.error(
            "consecutiveLocalOriginFailures",
            "outlier detection consecutive local origin "
            "failures is specified, but split external local origin errors is set to false",
        )
    return OutlierDetection(
        consecutive_5xx_errors=c5xx,
        consecutive_gateway_errors=gateway,
        consecutive_local_origin_failures=local,
        split_external_local_origin_errors=split,
        interval=interval,
        base_ejection_time=base,
        max_ejection_percent=percents["maxEjectionPercent"],
        min_health_percent=percents["minHealthPercent"],
        http_error_codes=tuple(codes),
    )


def parse_tls(f: Fields) -> ClientTLSSettings:
    """``ClientTLSSettings`` with the certificate rules of Istio's ``ValidateTLS``."""
    mode = f.enum("mode", TLS_MODES) or "DISABLE"
    cert, key, ca = f.str("clientCertificate"), f.str("privateKey"), f.str("caCertificates")
    credential, sni, crl = f.str("credentialName"), f.str("sni"), f.str("caCrl")
    sans = f.str_list("subjectAltNames")
    skip = f.bool("insecureSkipVerify")
    f.done()
    if mode in ("SIMPLE", "MUTUAL") and credential and (cert or ca or key or crl):
        f.error(
            "credentialName",
            "cannot specify client certificates or CA certificate or "
            "CA CRL if credentialName is set",
        )
    elif mode == "MUTUAL" and not credential:
        if not cert:
            f.error("clientCertificate", "client certificate required for mutual tls")
        if not key:
            f.error("privateKey", "private key required for mutual tls")
    # agent/validation.go ValidateTLS: in SIMPLE mode credentialName also carries a CA bundle.
    if skip and mode == "SIMPLE" and (ca or credential or sans):
        f.error(
            "insecureSkipVerify",
            "cannot specify caCertificates, credentialName or subjectAltNames when "
            "insecureSkipVerify is set true",
        )
    elif skip and mode == "MUTUAL" and (ca or sans):
        f.error(
            "insecureSkipVerify",
            "cannot specify caCertificates or subjectAltNames when insecureSkipVerify is set true",
        )
    return ClientTLSSettings(mode, cert, key, ca, credential, sans, sni, skip, crl)


def _components(
    f: Fields,
) -> tuple[
    LoadBalancerSettings | None,
    ConnectionPoolSettings | None,
    OutlierDetection | None,
    ClientTLSSettings | None,
]:
    return (
        _opt(f, "loadBalancer", parse_load_balancer),
        _opt(f, "connectionPool", parse_connection_pool),
        _opt(f, "outlierDetection", parse_outlier_detection),
        _opt(f, "tls", parse_tls),
    )


def parse_port_traffic_policy(f: Fields) -> PortTrafficPolicy:
    port = None
    if (pf := f.obj("port")) is not None:
        port = pf.int("number", required=True, minimum=1, maximum=65535)
        pf.done()
    elif not f.has("port"):
        f.error("port", "portTrafficPolicy must have valid port")
    lb, pool, outlier, tls = _components(f)
    f.done()
    if not any(f.has(k) for k in _COMPONENTS):
        f.error(None, "port traffic policy must have at least one field")
    return PortTrafficPolicy(port, lb, pool, outlier, tls)


def parse_retry_budget(f: Fields) -> RetryBudget:
    percent = f.number("percent")
    if percent is not None and not 0 <= percent <= 100:
        f.error("percent", f"percent {percent:g} is not in range 0..100")
        percent = None
    minimum = f.int("minRetryConcurrency", minimum=0, maximum=UINT32_MAX)
    interval = f.duration("budgetInterval", istio_rules=False)
    f.done()
    return RetryBudget(percent, minimum, interval)


def parse_traffic_policy(f: Fields) -> TrafficPolicy:
    lb, pool, outlier, tls = _components(f)
    ports: list[PortTrafficPolicy] = []
    for pf in f.objs("portLevelSettings"):
        entry = parse_port_traffic_policy(pf)
        if entry.port is not None and any(p.port == entry.port for p in ports):
            pf.warn("port", f"port {entry.port} is already configured above; Istio uses the first")
        ports.append(entry)
    budget = _opt(f, "retryBudget", parse_retry_budget)
    f.accept("tunnel", "proxyProtocol")  # not emulated
    f.done()
    if not any(f.has(k) and f.data[k] != [] for k in _POLICY_FIELDS):
        f.error(None, "traffic policy must have at least one field")
    if f.has("tunnel") and f.has("proxyProtocol"):
        f.error(None, "tunnel and proxyProtocol must not be set together")
    return TrafficPolicy(lb, pool, outlier, tls, tuple(ports), budget)


def parse_subset(f: Fields) -> Subset | None:
    name = f.str("name")
    labels = f.str_map("labels")
    check_labels(f, "labels", labels)
    policy = _opt(f, "trafficPolicy", parse_traffic_policy)
    f.done()
    if not name:
        f.error("name", "subset name cannot be empty")
        return None
    if not is_dns1123_label(name):
        f.error("name", f"subset name is invalid: {name}")
    return Subset(name=name, labels=labels, traffic_policy=policy)


def _workload_selector(f: Fields) -> Mapping[str, str]:
    labels = f.str_map("matchLabels")
    f.done()
    for k, v in labels.items():
        if not k or "*" in k or "*" in v:
            what = "empty key" if not k else "wildcard"
            f.error("matchLabels", f"{what} is not supported in selector: '{k}={v}'")
    if not labels:
        f.warn(None, "workload selector specified without labels")
    return labels


def parse_destination_rule(
    spec: Fields, api_version: str, metadata: Metadata, location: Location
) -> DestinationRule:
    """Read a DestinationRule ``spec`` (metadata already parsed by the loader)."""
    ns = metadata.namespace
    host = spec.str("host", required=True)
    if host is not None and (problem := check_host(host, allow_partial=True)):
        spec.error("host", problem)
    policy = _opt(spec, "trafficPolicy", parse_traffic_policy)
    subsets: list[Subset] = []
    for sf in spec.objs("subsets"):
        subset = parse_subset(sf)
        if subset is not None and any(s.name == subset.name for s in subsets):
            sf.error("name", f"duplicate subset names: {subset.name}")
        elif subset is not None:
            subsets.append(subset)
    selector = _opt(spec, "workloadSelector", _workload_selector)
    export_to = check_export_to(spec, selector=selector is not None)
    spec.done()
    return DestinationRule(
        api_version=api_version,
        metadata=metadata,
        location=location,
        host=host or "",
        fqdn_host=expand(host, ns) if host else "",
        traffic_policy=policy,
        subsets=tuple(subsets),
        export_to=export_to,
        workload_selector=selector,
    )
