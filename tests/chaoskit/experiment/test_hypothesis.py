from chaoskit.config.experiment import Hypothesis
from chaoskit.experiment.hypothesis import check_samples, percentile
from chaoskit.experiment.journal import Sample


def sample(status: int, latency: float = 0.1, error: str = "") -> Sample:
    return Sample(0.0, "method", "GET /", status, latency, error)


def test_percentile_is_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0


def test_success_rate_explains_failures():
    samples = [sample(200)] * 8 + [sample(503), sample(0, error="client timeout after 2s")]
    (check,) = check_samples(
        "method", Hypothesis(success_rate=0.95, allowed_statuses=(200,)), samples
    )
    assert not check.ok
    assert check.observed == "80% of 10"
    assert check.detail == "2 of 10 requests failed: 503 ×1, client timeout after 2s ×1"


def test_latency_only_counts_answered_requests():
    samples = [sample(200, 0.1)] * 19 + [sample(200, 3.0), sample(0, 9.0, "x")]
    checks = check_samples("method", Hypothesis(latency={"p95": 1.0, "max": 5.0}), samples)
    assert [c.ok for c in checks] == [True, True]
    checks = check_samples("method", Hypothesis(latency={"p99": 1.0}), samples)
    assert not checks[0].ok and checks[0].detail == "1 of 20 answered requests took longer"


def test_no_traffic_cannot_pass():
    (check,) = check_samples("method", Hypothesis(success_rate=0.5), [])
    assert not check.ok and check.observed == "no requests"


def test_failures_name_the_proxys_response_flags():
    """``503 UF,URX`` says why a request failed (connect failures, retries used up); the
    run output explains each flag it prints."""
    samples = [sample(200)] * 6 + [
        Sample(0.0, "method", "GET /", 503, 0.1, flags=("UF", "URX")),
        Sample(0.0, "method", "GET /", 503, 0.1, flags=("UF", "URX")),
        Sample(0.0, "method", "GET /", 504, 0.1, flags=("UT",)),
        sample(503),
    ]
    (check,) = check_samples("method", Hypothesis(success_rate=0.95), samples)
    assert check.detail == "4 of 10 requests failed: 503 UF,URX ×2, 504 UT ×1, 503 ×1"
