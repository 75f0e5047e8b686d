import textwrap

import pytest

from chaoskit.config.destination_rule import (
    UNLIMITED,
    ClientTLSSettings,
    ConnectionPoolSettings,
    ConsistentHashLB,
    DestinationRule,
    HTTPSettings,
    LoadBalancerSettings,
    OutlierDetection,
    PortTrafficPolicy,
    RetryBudget,
    Subset,
    TCPSettings,
    TrafficPolicy,
    Warmup,
    effective_policy,
)
from chaoskit.config.loader import load_text
from chaoskit.config.resource import Metadata
from chaoskit.config.yamlsource import Location


def dr(spec: str, name: str = "reviews", namespace: str = "default") -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
        + "\n"
    )


def load_one(text: str) -> DestinationRule:
    result = load_text(text)
    assert [str(i) for i in result.issues] == []
    (resource,) = result.resources
    assert isinstance(resource, DestinationRule)
    return resource


# -- valid rules ------------------------------------------------------------------------------

BOOKINFO_ALL = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: productpage
spec:
  host: productpage
  subsets:
  - name: v1
    labels:
      version: v1
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: v3
    labels:
      version: v3
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ratings
spec:
  host: ratings
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: v2-mysql
    labels:
      version: v2-mysql
  - name: v2-mysql-vm
    labels:
      version: v2-mysql-vm
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: details
spec:
  host: details
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
"""


def test_bookinfo_destination_rule_all():
    result = load_text(BOOKINFO_ALL)
    assert [str(i) for i in result.issues] == []
    rules = result.resources
    assert all(isinstance(r, DestinationRule) for r in rules)
    assert [r.fqdn_host for r in rules if isinstance(r, DestinationRule)] == [
        "productpage.default.svc.cluster.local",
        "reviews.default.svc.cluster.local",
        "ratings.default.svc.cluster.local",
        "details.default.svc.cluster.local",
    ]
    ratings = rules[2]
    assert isinstance(ratings, DestinationRule)
    assert ratings.host == "ratings"
    assert [s.name for s in ratings.subsets] == ["v1", "v2", "v2-mysql", "v2-mysql-vm"]
    assert ratings.subset("v2-mysql") == Subset("v2-mysql", {"version": "v2-mysql"})
    assert ratings.subset("v9") is None
    assert ratings.traffic_policy is None


def test_bookinfo_mtls_and_random_variants():
    mtls = load_one(
        dr("""
        host: reviews
        trafficPolicy:
          tls:
            mode: ISTIO_MUTUAL
        subsets:
        - {name: v1, labels: {version: v1}}
    """)
    )
    assert mtls.traffic_policy is not None
    assert mtls.traffic_policy.tls == ClientTLSSettings(mode="ISTIO_MUTUAL")
    random = load_one(
        dr("""
        host: reviews
        trafficPolicy:
          loadBalancer:
            simple: RANDOM
        subsets:
        - {name: v1, labels: {version: v1}}
    """)
    )
    assert random.traffic_policy is not None
    assert random.traffic_policy.effective_load_balancer.effective_simple == "RANDOM"


def test_egress_google_apis_port_level_tls():
    rule = load_one(
        dr(
            """
        host: www.googleapis.com
        trafficPolicy:
          loadBalancer:
            simple: ROUND_ROBIN
          portLevelSettings:
          - port:
              number: 443
            tls:
              mode: SIMPLE # initiates HTTPS when accessing www.googleapis.com
    """,
            name="googleapis",
        )
    )
    assert rule.fqdn_host == "www.googleapis.com"
    on_443 = effective_policy(rule, 443, None)
    assert on_443.tls == ClientTLSSettings(mode="SIMPLE")
    assert on_443.load_balancer is None  # port-level replaces the whole policy
    on_80 = effective_policy(rule, 80, None)
    assert on_80.load_balancer == LoadBalancerSettings(simple="ROUND_ROBIN")
    assert on_80.tls is None and on_80.port_level_settings == ()


def test_httpbin_circuit_breaker():
    rule = load_one(
        dr(
            """
        host: httpbin
        trafficPolicy:
          connectionPool:
            tcp:
              maxConnections: 1
            http:
              http1MaxPendingRequests: 1
              maxRequestsPerConnection: 1
          outlierDetection:
            consecutive5xxErrors: 1
            interval: 1s
            baseEjectionTime: 3m
            maxEjectionPercent: 100
    """,
            name="httpbin",
        )
    )
    policy = rule.traffic_policy
    assert policy is not None and policy.connection_pool is not None
    assert policy.connection_pool.tcp == TCPSettings(max_connections=1)
    assert policy.connection_pool.http == HTTPSettings(
        http1_max_pending_requests=1, max_requests_per_connection=1
    )
    http = policy.connection_pool.effective_http
    assert http.effective_http2_max_requests == UNLIMITED
    assert http.effective_max_retries == UNLIMITED
    assert policy.outlier_detection == OutlierDetection(
        consecutive_5xx_errors=1, interval=1.0, base_ejection_time=180.0, max_ejection_percent=100
    )
    od = policy.outlier_detection
    assert od.effective_consecutive_5xx_errors == 1
    assert od.effective_consecutive_gateway_errors == 0
    assert od.effective_min_health_percent == 0
    assert policy.load_balancer is None
    assert policy.effective_load_balancer.effective_simple == "LEAST_REQUEST"


def test_full_policy_parses():
    rule = load_one(
        dr(
            """
        host: "*.example.com"
        exportTo: [".", istio-system]
        trafficPolicy:
          loadBalancer:
            consistentHash:
              httpCookie: {name: user, path: /, ttl: 0s, attributes: [{name: SameSite, value: Lax}]}
              maglev: {tableSize: 65537}
          connectionPool:
            tcp:
              connectTimeout: 250ms
              idleTimeout: 0s
              maxConnectionDuration: 1h
              tcpKeepalive: {probes: 3, time: 60s, interval: 10s}
            http:
              h2UpgradePolicy: UPGRADE
              maxConcurrentStreams: 100
              idleTimeout: 30s
              http2KeepAlive: {interval: 10s, timeout: 2s}
          outlierDetection:
            consecutiveGatewayErrors: 3
            consecutive5xxErrors: 0
            splitExternalLocalOriginErrors: true
            consecutiveLocalOriginFailures: 2
            minHealthPercent: 50
            outlierDetectionHttpErrorCodes: [500, 503]
          retryBudget: {percent: 25, minRetryConcurrency: 5, budgetInterval: 1s}
          tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, sni: a.example.com}
        subsets:
        - name: all
          trafficPolicy:
            loadBalancer:
              simple: LEAST_REQUEST
              warmup: {duration: 30s, minimumPercent: 20, aggression: 2}
    """,
            name="wild",
        )
    )
    assert rule.fqdn_host == "*.example.com"
    assert rule.export_to == (".", "istio-system")
    policy = rule.traffic_policy
    assert policy is not None and policy.load_balancer is not None
    ch = policy.load_balancer.consistent_hash
    assert ch is not None and ch.http_cookie is not None
    assert (ch.http_cookie.name, ch.http_cookie.ttl) == ("user", 0.0)
    assert ch.http_cookie.attributes == (("SameSite", "Lax"),)
    assert (ch.algorithm, ch.effective_table_size) == ("MAGLEV", 65537)
    sub = rule.subsets[0].traffic_policy
    assert sub is not None and sub.load_balancer is not None
    assert sub.load_balancer.warmup == Warmup(30.0, 20.0, 2.0)
    pool = policy.effective_connection_pool
    assert pool.effective_tcp.effective_connect_timeout == 0.25
    assert pool.effective_tcp.effective_idle_timeout is None  # 0s disables
    assert pool.effective_http.effective_h2_upgrade_policy == "UPGRADE"
    od = policy.outlier_detection
    assert od is not None
    assert od.effective_consecutive_5xx_errors == 0  # 0 disables
    assert od.effective_consecutive_gateway_errors == 3
    assert od.effective_consecutive_local_origin_failures == 2
    assert od.http_error_codes == (500, 503)
    assert policy.retry_budget == RetryBudget(25.0, 5, 1.0)
    assert policy.tls is not None and policy.tls.sni == "a.example.com"


def test_workload_selector_and_namespace_expansion():
    rule = load_one(
        dr(
            """
        host: reviews
        workloadSelector:
          matchLabels: {app: productpage}
        exportTo: ["."]
    """,
            namespace="shop",
        )
    )
    assert rule.fqdn_host == "reviews.shop.svc.cluster.local"
    assert rule.workload_selector == {"app": "productpage"}


# -- deprecations and lint --------------------------------------------------------------------


def warnings_of(text: str) -> list[tuple[str, str]]:
    result = load_text(text)
    assert [str(i) for i in result.issues.errors] == []
    return [(i.path, i.message) for i in result.issues.warnings]


def test_least_conn_is_least_request_with_warning():
    text = dr("""
        host: reviews
        trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}
    """)
    [(path, message)] = warnings_of(text)
    assert path == "spec.trafficPolicy.loadBalancer.simple" and "deprecated" in message
    rule = load_text(text).resources[0]
    assert isinstance(rule, DestinationRule) and rule.traffic_policy is not None
    assert rule.traffic_policy.load_balancer == LoadBalancerSettings(simple="LEAST_REQUEST")


def test_deprecated_fields_warn():
    found = warnings_of(
        dr("""
        host: reviews
        trafficPolicy:
          loadBalancer:
            consistentHash: {httpHeaderName: x-user, minimumRingSize: 2048}
          outlierDetection: {consecutiveErrors: 1}
        subsets:
        - name: v1
          trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 10s}}
    """)
    )
    paths = [p for p, _ in found]
    assert paths == [
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
        "spec.subsets[0].trafficPolicy.loadBalancer.warmupDurationSecs",
    ]
    assert "ignored" in found[1][1]
    rule = load_text(
        dr("""
        host: reviews
        trafficPolicy:
          loadBalancer:
            consistentHash: {httpHeaderName: x-user, minimumRingSize: 2048}
    """)
    ).resources[0]
    assert isinstance(rule, DestinationRule) and rule.traffic_policy is not None
    lb = rule.traffic_policy.load_balancer
    assert lb is not None and lb.consistent_hash is not None
    assert lb.consistent_hash.effective_minimum_ring_size == 2048


def test_lint_warnings():
    found = warnings_of(
        dr("""
        host: reviews
        trafficPolicy:
          loadBalancer:
            consistentHash: {ringHash: {minimumRingSize: 10}}
            warmup: {duration: 10s}
          portLevelSettings:
          - {port: {number: 80}, tls: {mode: SIMPLE}}
          - {port: {number: 80}, tls: {mode: DISABLE}}
        workloadSelector: {}
    """)
    )
    assert [p for p, _ in found] == [
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "spec.trafficPolicy.loadBalancer",
        "spec.trafficPolicy.portLevelSettings[1].port",
        "spec.workloadSelector",
    ]
    assert "random hosts" in found[0][1]
    assert "warmup only applies" in found[1][1]
    assert "Istio uses the first" in found[2][1]


# -- invalid rules ----------------------------------------------------------------------------

TP = "spec.trafficPolicy"
LB = f"{TP}.loadBalancer"
CH = f"{LB}.consistentHash"
POOL = f"{TP}.connectionPool"
OD = f"{TP}.outlierDetection"


def tp(body: str) -> str:
    """A rule for host ``r`` with ``trafficPolicy: body``."""
    return f"host: r\ntrafficPolicy: {body}"


def lb(body: str) -> str:
    return tp(f"{{loadBalancer: {body}}}")


def pool(body: str) -> str:
    return tp(f"{{connectionPool: {body}}}")


def od(body: str) -> str:
    return tp(f"{{outlierDetection: {body}}}")


def maglev(body: str) -> str:
    return lb(f"{{consistentHash: {{useSourceIp: true, {body}}}}}")


INVALID = [
    # host, subsets, exportTo, workloadSelector
    ("host: reviews_v1", "spec.host", "not a valid DNS name"),
    ("subsets: [{name: v1}]", "spec", '"host" is required'),
    (
        "host: r\nsubsets: [{name: v1}, {name: v1}]",
        "spec.subsets[1].name",
        "duplicate subset names: v1",
    ),
    ("host: r\nsubsets: [{name: V_1}]", "spec.subsets[0].name", "subset name is invalid: V_1"),
    (
        "host: r\nsubsets: [{labels: {version: v1}}]",
        "spec.subsets[0].name",
        "subset name cannot be empty",
    ),
    (
        "host: r\nsubsets: [{name: v1, labels: {'-bad': v1}}]",
        "spec.subsets[0].labels.-bad",
        "invalid label key",
    ),
    (
        "host: r\nsubsets: [{name: v1, labels: {version: 1}}]",
        "spec.subsets[0].labels.version",
        "quote it",
    ),
    (
        "host: r\nsubsets: [{name: v1, trafficPolicy: {}}]",
        "spec.subsets[0].trafficPolicy",
        "traffic policy must have at least one field",
    ),
    (
        "host: r\nworkloadSelector: {matchLabels: {app: web}}\nexportTo: ['*']",
        "spec.exportTo",
        "cannot have exportTo beyond current namespace",
    ),
    ("host: r\nexportTo: ['.', default]", "spec.exportTo[1]", "duplicate entries in exportTo"),
    (
        "host: r\nworkloadSelector: {matchLabels: {app: 'web*'}}",
        "spec.workloadSelector.matchLabels",
        "wildcard is not supported in selector",
    ),
    # trafficPolicy and portLevelSettings
    (tp("{}"), TP, "traffic policy must have at least one field"),
    (
        tp("{portLevelSettings: [{port: {number: 80}}]}"),
        f"{TP}.portLevelSettings[0]",
        "port traffic policy must have at least one field",
    ),
    (
        tp("{portLevelSettings: [{tls: {mode: SIMPLE}}]}"),
        f"{TP}.portLevelSettings[0].port",
        "portTrafficPolicy must have valid port",
    ),
    (
        tp("{tunnel: {targetHost: a.b, targetPort: 80}, proxyProtocol: {version: V1}}"),
        TP,
        "tunnel and proxyProtocol must not be set together",
    ),
    (tp("{retryBudget: {percent: 150}}"), f"{TP}.retryBudget.percent", "not in range 0..100"),
    (
        tp("{tls: {mode: MUTUAL, privateKey: /k.pem}}"),
        f"{TP}.tls.clientCertificate",
        "client certificate required for mutual tls",
    ),
    (
        tp("{tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca.pem}}"),
        f"{TP}.tls.credentialName",
        "cannot specify client certificates or CA certificate",
    ),
    # connectionPool
    (pool("{}"), POOL, "connection pool must have at least one field"),
    (
        pool("{tcp: {maxConnections: -1}}"),
        f"{POOL}.tcp.maxConnections",
        "max connections must be non-negative",
    ),
    (
        pool("{http: {http1MaxPendingRequests: -5}}"),
        f"{POOL}.http.http1MaxPendingRequests",
        "http1 max pending requests must be non-negative",
    ),
    (
        pool("{http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}"),
        f"{POOL}.http.useClientProtocol",
        "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
    ),
    (pool("{http: {idleTimeout: 0s}}"), f"{POOL}.http.idleTimeout", "greater than 1ms"),
    (pool("{tcp: {connectTimeout: 10}}"), f"{POOL}.tcp.connectTimeout", "not a duration"),
    (
        pool("{http: {http2KeepAlive: {interval: 1s}}}"),
        f"{POOL}.http.http2KeepAlive.timeout",
        "http2 keepalive timeout is required",
    ),
    # outlierDetection
    (
        od("{maxEjectionPercent: 101}"),
        f"{OD}.maxEjectionPercent",
        "percentage 101 is not in range 0..100",
    ),
    (
        od("{minHealthPercent: -1}"),
        f"{OD}.minHealthPercent",
        "percentage -1 is not in range 0..100",
    ),
    (od("{interval: 500us}"), f"{OD}.interval", "greater than 1ms"),
    (od("{baseEjectionTime: 1.5ms}"), f"{OD}.baseEjectionTime", "ms precision"),
    (
        od("{consecutiveLocalOriginFailures: 3}"),
        f"{OD}.consecutiveLocalOriginFailures",
        "split external local origin errors is set to false",
    ),
    (
        od("{consecutive5xxError: 3}"),
        f"{OD}.consecutive5xxError",
        'did you mean "consecutive5xxErrors"',
    ),
    # loadBalancer
    (lb("{simple: ROUND_ROBBIN}"), f"{LB}.simple", 'did you mean "ROUND_ROBIN"'),
    (
        lb("{simple: RANDOM, consistentHash: {useSourceIp: true}}"),
        LB,
        "only one of simple, consistentHash",
    ),
    (
        lb("{localityLbSetting: {}, zoneAwareLbSetting: {}}"),
        LB,
        "only one of localityLbSetting and zoneAwareLbSetting",
    ),
    (
        lb("{warmup: {duration: 1s}, warmupDurationSecs: 1s}"),
        LB,
        "only one of warmupDurationSecs or warmup",
    ),
    (lb("{warmup: {minimumPercent: 5}}"), f"{LB}.warmup", '"duration" is required'),
    (
        lb("{warmup: {duration: 1s, minimumPercent: 101}}"),
        f"{LB}.warmup.minimumPercent",
        "between 0 and 100",
    ),
    (
        lb("{warmup: {duration: 1s, aggression: 0}}"),
        f"{LB}.warmup.aggression",
        "aggression should be greater than 0",
    ),
    (
        lb("{consistentHash: {httpHeaderName: a, useSourceIp: true}}"),
        CH,
        "only one hash key may be set",
    ),
    (
        lb("{consistentHash: {httpCookie: {ttl: 1s}}}"),
        f"{CH}.httpCookie.name",
        "name required for HttpCookie",
    ),
    (
        maglev("maglev: {tableSize: 65536}"),
        f"{CH}.maglev.tableSize",
        "tableSize must be a prime number for maglev",
    ),
    (
        maglev("maglev: {tableSize: 5000011}"),
        f"{CH}.maglev.tableSize",
        "tableSize must be less than 5000011",
    ),
    (maglev("maglev: {}"), f"{CH}.maglev.tableSize", "tableSize must be set for maglev"),
    (maglev("ringHash: {}, maglev: {tableSize: 3}"), CH, "only one of ringHash, maglev"),
    (
        maglev("ringHash: {}, minimumRingSize: 8"),
        f"{CH}.minimumRingSize",
        "only one of MinimumRingSize or Maglev/Ringhash",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), INVALID, ids=[f"{c[1]}:{c[2]}" for c in INVALID]
)
def test_invalid(spec: str, path: str, fragment: str):
    result = load_text(dr(spec))
    errors = [(i.path, i.message) for i in result.issues.errors]
    assert len(errors) == 1, errors
    assert errors[0][0] == path
    assert fragment in errors[0][1]


def test_issue_points_at_the_line():
    text = dr("""
        host: reviews
        trafficPolicy:
          outlierDetection:
            interval: 1s
            maxEjectionPercent: 120
    """)
    (issue,) = load_text(text).issues.errors
    assert issue.location.line == text.splitlines().index("      maxEjectionPercent: 120") + 1


def test_tcp_idle_timeout_and_cookie_ttl_may_be_zero():
    rule = load_one(
        dr("""
        host: reviews
        trafficPolicy:
          connectionPool: {tcp: {idleTimeout: 0s}}
          loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s}}}
    """)
    )
    assert rule.traffic_policy is not None
    assert rule.traffic_policy.effective_connection_pool.effective_tcp.idle_timeout == 0.0


# -- defaults ---------------------------------------------------------------------------------


def test_connection_pool_defaults_and_zero_means_unlimited():
    tcp, http = TCPSettings(), HTTPSettings()
    assert tcp.effective_max_connections == UNLIMITED == 2**32 - 1
    assert tcp.effective_connect_timeout == 10.0
    assert tcp.effective_idle_timeout == 3600.0
    assert TCPSettings(idle_timeout=0.0).effective_idle_timeout is None
    assert TCPSettings(max_connections=0).effective_max_connections == UNLIMITED
    assert TCPSettings(max_connections=7).effective_max_connections == 7
    assert http.effective_http1_max_pending_requests == UNLIMITED
    assert HTTPSettings(http2_max_requests=0).effective_http2_max_requests == UNLIMITED
    assert http.effective_max_requests_per_connection == UNLIMITED
    assert http.effective_max_retries == UNLIMITED
    assert http.effective_idle_timeout == 3600.0
    assert http.effective_h2_upgrade_policy == "DO_NOT_UPGRADE"
    assert HTTPSettings(h2_upgrade_policy="DEFAULT").effective_h2_upgrade_policy == "DO_NOT_UPGRADE"
    assert ConnectionPoolSettings().effective_tcp == tcp
    assert TrafficPolicy().effective_connection_pool.effective_http == http


def test_outlier_detection_defaults():
    od = OutlierDetection()
    assert od.effective_consecutive_5xx_errors == 5
    assert od.effective_consecutive_gateway_errors == 0
    assert od.effective_consecutive_local_origin_failures == 0  # only with split
    assert (
        OutlierDetection(
            split_external_local_origin_errors=True
        ).effective_consecutive_local_origin_failures
        == 5
    )
    assert od.effective_interval == 10.0
    assert od.effective_base_ejection_time == 30.0
    assert od.effective_max_ejection_percent == 10
    assert OutlierDetection(max_ejection_percent=0).effective_max_ejection_percent == 10
    assert od.effective_min_health_percent == 0
    assert OutlierDetection(consecutive_5xx_errors=0).effective_consecutive_5xx_errors == 0


def test_load_balancer_and_other_defaults():
    assert LoadBalancerSettings().effective_simple == "LEAST_REQUEST"
    assert LoadBalancerSettings(simple="UNSPECIFIED").effective_simple == "LEAST_REQUEST"
    assert TrafficPolicy().effective_load_balancer.consistent_hash is None
    ch = ConsistentHashLB(use_source_ip=True)
    assert (ch.algorithm, ch.effective_minimum_ring_size, ch.effective_table_size) == (
        "RING_HASH",
        1024,
        65537,
    )
    assert RetryBudget().effective_percent == 20.0
    assert RetryBudget().effective_min_retry_concurrency == 3
    assert RetryBudget(percent=0.0).effective_percent == 0.0
    assert ClientTLSSettings().mode == "DISABLE"


def test_warmup_defaults():
    rule = load_one(
        dr("""
        host: reviews
        trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 90s}}}
    """)
    )
    assert rule.traffic_policy is not None and rule.traffic_policy.load_balancer is not None
    warmup = rule.traffic_policy.load_balancer.warmup
    assert warmup is not None
    assert (warmup.duration, warmup.minimum_percent, warmup.aggression) == (90.0, 10.0, 1.0)


# -- effective_policy (Istio's MergeTrafficPolicy, pilot/pkg/model/destination_rule.go) -------

RANDOM = LoadBalancerSettings(simple="RANDOM")
RR = LoadBalancerSettings(simple="ROUND_ROBIN")
POOL_TCP = ConnectionPoolSettings(tcp=TCPSettings(max_connections=10))
POOL_HTTP = ConnectionPoolSettings(http=HTTPSettings(http1_max_pending_requests=5))
EJECT = OutlierDetection(consecutive_5xx_errors=1)
EJECT_FAST = OutlierDetection(consecutive_5xx_errors=1, interval=1.0)
SIMPLE_TLS = ClientTLSSettings(mode="SIMPLE")
BUDGET = RetryBudget(percent=50.0)


def rule(top: TrafficPolicy | None = None, *subsets: Subset) -> DestinationRule:
    return DestinationRule(
        api_version="networking.istio.io/v1",
        metadata=Metadata(name="reviews"),
        location=Location("<test>", 1),
        host="reviews",
        fqdn_host="reviews.default.svc.cluster.local",
        traffic_policy=top,
        subsets=subsets,
    )


TOP = TrafficPolicy(
    load_balancer=RANDOM,
    connection_pool=POOL_TCP,
    outlier_detection=EJECT,
    retry_budget=BUDGET,
    port_level_settings=(PortTrafficPolicy(9080, tls=SIMPLE_TLS),),
)


def test_no_rule_or_no_policy_means_defaults():
    assert effective_policy(None, 9080, "v1") == TrafficPolicy()
    assert effective_policy(rule(), 9080, None) == TrafficPolicy()
    assert effective_policy(rule(None, Subset("v1")), 9080, "v1") == TrafficPolicy()


def test_top_level_applies_on_other_ports_and_without_port():
    expected = TrafficPolicy(
        load_balancer=RANDOM, connection_pool=POOL_TCP, outlier_detection=EJECT, retry_budget=BUDGET
    )
    assert effective_policy(rule(TOP), 80, None) == expected
    assert effective_policy(rule(TOP), None, None) == expected


def test_port_level_replaces_the_whole_policy():
    # Omitted components revert to defaults, not to the top level (and the budget is dropped).
    assert effective_policy(rule(TOP), 9080, None) == TrafficPolicy(tls=SIMPLE_TLS)


def test_first_port_level_entry_wins():
    top = TrafficPolicy(
        port_level_settings=(
            PortTrafficPolicy(80, load_balancer=RR),
            PortTrafficPolicy(80, load_balancer=RANDOM),
        )
    )
    assert effective_policy(rule(top), 80, None) == TrafficPolicy(load_balancer=RR)


def test_subset_overrides_per_component():
    v1 = Subset("v1", {"version": "v1"}, TrafficPolicy(connection_pool=POOL_HTTP))
    result = effective_policy(rule(TOP, v1), 80, "v1")
    # The subset's connectionPool replaces the whole block: no merge of tcp and http.
    assert result == TrafficPolicy(
        load_balancer=RANDOM,
        connection_pool=POOL_HTTP,
        outlier_detection=EJECT,
        retry_budget=BUDGET,
    )
    # On the top-level port-level port, the subset still overrides only what it sets.
    assert effective_policy(rule(TOP, v1), 9080, "v1") == TrafficPolicy(
        connection_pool=POOL_HTTP, tls=SIMPLE_TLS
    )


def test_subset_port_level_wins_for_all_four_components():
    v2 = Subset(
        "v2",
        {"version": "v2"},
        TrafficPolicy(
            outlier_detection=EJECT_FAST,
            retry_budget=RetryBudget(percent=10.0),
            port_level_settings=(PortTrafficPolicy(9080, load_balancer=RR),),
        ),
    )
    # All four components come from the subset's port entry, even the unset ones; like any
    # port-level entry it carries no retryBudget, and the top level's port entry had none.
    assert effective_policy(rule(TOP, v2), 9080, "v2") == TrafficPolicy(load_balancer=RR)
    # Elsewhere the subset's own components override the top level one by one.
    assert effective_policy(rule(TOP, v2), 80, "v2") == TrafficPolicy(
        load_balancer=RANDOM,
        connection_pool=POOL_TCP,
        outlier_detection=EJECT_FAST,
        retry_budget=RetryBudget(percent=10.0),
    )


def test_unknown_subset_uses_the_host_policy():
    v1 = Subset("v1", {}, TrafficPolicy(load_balancer=RR))
    assert effective_policy(rule(TOP, v1), 80, "v9") == effective_policy(rule(TOP, v1), 80, None)
