from chaoskit.stats import Stats

CLUSTER = "outbound|9080|v1|reviews.default.svc.cluster.local"


def test_counters_gauges_and_reset():
    s = Stats()
    s.inc("http.downstream_rq_total")
    s.cluster_inc(CLUSTER, "upstream_rq_retry", 2)
    s.cluster_gauge(CLUSTER, "outlier_detection.ejections_active", 1)
    snap = s.snapshot()
    assert snap["http.downstream_rq_total"] == 1
    assert snap[f"cluster.{CLUSTER}.upstream_rq_retry"] == 2
    s.reset()
    assert s.get("http.downstream_rq_total") == 0
    assert s.get(f"cluster.{CLUSTER}.outlier_detection.ejections_active") == 1  # gauges are state


def test_prometheus_text_uses_envoy_names_and_cluster_labels():
    s = Stats()
    s.cluster_inc(CLUSTER, "upstream_rq_total", 3)
    s.cluster_gauge(CLUSTER, "outlier_detection.ejections_active", 1)
    s.inc("fault.aborts_injected")
    text = s.prometheus()
    assert f'envoy_cluster_upstream_rq_total{{envoy_cluster_name="{CLUSTER}"}} 3' in text
    assert (
        f'envoy_cluster_outlier_detection_ejections_active{{envoy_cluster_name="{CLUSTER}"}} 1'
        in text
    )
    assert "# TYPE envoy_cluster_upstream_rq_total counter" in text
    assert "# TYPE envoy_cluster_outlier_detection_ejections_active gauge" in text
    assert "envoy_fault_aborts_injected 1" in text


def test_prometheus_lines_are_grouped_by_metric():
    s = Stats()
    for cluster in ("a", "b"):
        s.cluster_inc(cluster, "upstream_rq_total")
        s.cluster_inc(cluster, "upstream_rq_retry")
    metrics = [
        line.split("{")[0] for line in s.prometheus().splitlines() if not line.startswith("#")
    ]
    assert metrics == sorted(metrics)
