import random

import pytest

from chaoskit.config.destination_rule import OutlierDetection
from chaoskit.loadbalancing.base import UpstreamHost
from chaoskit.resilience.outlier_detection import Ejection, OutlierDetector

HOSTS = [UpstreamHost(f"10.0.0.{i}", 8080) for i in range(1, 11)]
A, B, C, D = (h.key for h in HOSTS[:4])


def detector(n_hosts: int = 1, start: float = 0.0, **settings) -> OutlierDetector:
    return OutlierDetector(OutlierDetection(**settings), start, [h.key for h in HOSTS[:n_hosts]])


def counters(od: OutlierDetector, key: str) -> tuple[int, int, int]:
    snap = od.snapshot()[key]
    return (
        snap["consecutive_5xx"],
        snap["consecutive_gateway_failure"],
        snap["consecutive_local_origin_failure"],
    )


def test_istio_circuit_breaking_task_ejects_after_one_503_until_the_sweep_after_3m():
    od = detector(
        consecutive_5xx_errors=1, interval=1.0, base_ejection_time=180.0, max_ejection_percent=100
    )
    ejection = od.report(A, 503, now=0.5)
    assert ejection == Ejection(A, "consecutive_5xx", 0.5, 180.0, until=181.0, multiplier=1)
    assert od.is_ejected(A)
    assert od.healthy(HOSTS[:1]) == []
    assert od.sweep(180.9) == []  # 180 s have passed at 180.5, but no sweep since
    assert od.is_ejected(A)
    assert od.snapshot()[A]["ejected_until"] == 181.0
    assert od.sweep(181.0) == [A]
    assert od.healthy(HOSTS[:1]) == HOSTS[:1]
    assert od.stats()["outlier_detection.ejections_enforced_consecutive_5xx"] == 1
    assert od.stats()["outlier_detection.ejections_active"] == 0


def test_default_max_ejection_percent_never_ejects_from_three_hosts():
    od = detector(3)  # defaults: 5 consecutive 5xx, 10% max ejection
    for i in range(15):
        assert od.report(A, 503, now=float(i)) is None
    assert not od.is_ejected(A)
    stats = od.stats()
    assert stats["outlier_detection.ejections_overflow"] == 3
    assert stats["outlier_detection.ejections_detected_consecutive_5xx"] == 3
    assert stats["outlier_detection.ejections_total"] == 0
    # The tripped 5xx counter resets even without an ejection; the gateway detector is off but
    # still counts, as in Envoy.
    assert counters(od, A) == (0, 15, 0)


def test_ten_percent_of_ten_hosts_allows_exactly_one_ejection():
    od = detector(10, consecutive_5xx_errors=1)
    assert od.report(A, 500, now=1.0) is not None
    assert od.report(B, 500, now=1.0) is None
    assert od.ejections_active == 1
    assert od.stats()["outlier_detection.ejections_overflow"] == 1


def test_max_ejection_percent_100_can_eject_every_host():
    od = detector(3, consecutive_5xx_errors=1, max_ejection_percent=100)
    for key in (A, B, C):
        assert od.report(key, 502, now=2.0) is not None
    assert od.ejections_active == 3
    assert od.healthy(HOSTS[:3]) == []  # the caller answers 503 UH "no healthy upstream"


def test_min_health_percent_panic_balances_over_all_hosts():
    od = detector(4, consecutive_5xx_errors=1, max_ejection_percent=100, min_health_percent=50)
    hosts = HOSTS[:4]
    od.report(A, 503, now=1.0)
    assert od.healthy(hosts) == hosts[1:]  # 75% healthy
    od.report(B, 503, now=1.0)
    assert od.healthy(hosts) == hosts[2:]  # 50% is not below 50%
    od.report(C, 503, now=1.0)
    assert od.healthy(hosts) == hosts  # 25% < 50%: panic, health ignored


def test_gateway_errors_count_separately_and_500_resets_only_the_gateway_counter():
    od = detector(consecutive_gateway_errors=3, max_ejection_percent=100)  # 5xx threshold 5
    for status in (502, 503):
        od.report(A, status, now=1.0)
    assert counters(od, A) == (2, 2, 0)
    od.report(A, 500, now=1.0)
    assert counters(od, A) == (3, 0, 0)
    od.report(A, 504, now=1.0)
    ejection = od.report(A, 503, now=1.0)
    assert ejection is not None
    assert ejection.reason == "consecutive_5xx"  # 5 in a row, but only 2 gateway errors


def test_gateway_threshold_ejects_and_a_non_5xx_resets_both():
    od = detector(consecutive_gateway_errors=2, max_ejection_percent=100)
    od.report(A, 503, now=1.0)
    od.report(A, 404, now=1.0)
    assert counters(od, A) == (0, 0, 0)
    od.report(A, 503, now=1.0)
    ejection = od.report(A, 504, now=1.0)
    assert ejection is not None
    assert ejection.reason == "consecutive_gateway_failure"
    stats = od.stats()
    assert stats["outlier_detection.ejections_enforced_consecutive_gateway_failure"] == 1


def test_both_thresholds_on_one_response_eject_once_as_gateway_failure():
    od = detector(consecutive_5xx_errors=2, consecutive_gateway_errors=2, max_ejection_percent=100)
    od.report(A, 503, now=1.0)
    ejection = od.report(A, 503, now=1.0)
    assert ejection is not None
    assert ejection.reason == "consecutive_gateway_failure"  # Envoy checks it first
    assert od.stats()["outlier_detection.ejections_detected_consecutive_5xx"] == 0


def test_zero_disables_the_5xx_detector():
    od = detector(consecutive_5xx_errors=0, max_ejection_percent=100)
    assert all(od.report(A, 503, now=float(t)) is None for t in range(50))


def test_errors_while_ejected_neither_extend_nor_re_eject():
    od = detector(consecutive_5xx_errors=2, max_ejection_percent=100, interval=10.0)
    od.report(A, 503, now=1.0)
    first = od.report(A, 503, now=1.0)
    assert first is not None
    assert [od.report(A, 503, now=2.0) for _ in range(5)] == [None] * 5  # in-flight stragglers
    assert od.sweep(first.until) == [A]
    assert counters(od, A) == (0, 0, 0)  # un-ejection resets every counter
    assert od.report(A, 503, now=first.until + 1) is None


def test_http_error_codes_restrict_what_counts():
    od = detector(consecutive_5xx_errors=2, max_ejection_percent=100, http_error_codes=(500,))
    for _ in range(3):
        assert od.report(A, 503, now=1.0) is None
    assert counters(od, A) == (0, 0, 0)
    od.report(A, 500, now=1.0)
    assert od.report(A, 500, now=1.0) is not None


@pytest.mark.parametrize(
    ("events", "ejected"),
    [
        (["connect-failure", "timeout"], True),  # 503 then 504
        (["reset", 503], True),
        (["connect-failure", "success", "connect-failure"], False),  # success is a 200
        (["connect-failure", "connected", "connect-failure"], True),  # connected maps to nothing
    ],
)
def test_non_split_mode_maps_local_results_to_status_codes(events, ejected):
    od = detector(consecutive_5xx_errors=2, max_ejection_percent=100)
    results = [od.report(A, event, now=1.0) for event in events]
    assert (results[-1] is not None) is ejected


def test_non_split_timeout_counts_as_a_gateway_error():
    od = detector(consecutive_5xx_errors=0, consecutive_gateway_errors=2, max_ejection_percent=100)
    od.report(A, "timeout", now=1.0)
    ejection = od.report(A, "reset", now=1.0)
    assert ejection is not None
    assert ejection.reason == "consecutive_gateway_failure"


def test_split_mode_counts_local_failures_on_their_own():
    od = detector(
        consecutive_5xx_errors=2,
        split_external_local_origin_errors=True,
        consecutive_local_origin_failures=3,
        max_ejection_percent=100,
    )
    od.report(A, "connect-failure", now=1.0)
    od.report(A, "timeout", now=1.0)
    assert counters(od, A) == (0, 0, 2)  # not seen as 5xx
    ejection = od.report(A, "reset", now=1.0)
    assert ejection is not None
    assert ejection.reason == "consecutive_local_origin_failure"
    stats = od.stats()
    assert stats["outlier_detection.ejections_enforced_consecutive_local_origin_failure"] == 1


@pytest.mark.parametrize("success", ["success", "connected", 200, 503])
def test_split_mode_local_success_resets_the_local_counter(success):
    od = detector(
        split_external_local_origin_errors=True,
        consecutive_local_origin_failures=2,
        max_ejection_percent=100,
    )
    od.report(A, "connect-failure", now=1.0)
    od.report(A, success, now=1.0)  # any response proves the connection worked
    assert od.report(A, "connect-failure", now=1.0) is None
    assert od.report(A, "connect-failure", now=1.0) is not None


def test_split_mode_statuses_still_feed_the_5xx_detector():
    od = detector(
        consecutive_5xx_errors=2, split_external_local_origin_errors=True, max_ejection_percent=100
    )
    od.report(A, 503, now=1.0)
    ejection = od.report(A, 503, now=1.0)
    assert ejection is not None
    assert ejection.reason == "consecutive_5xx"


def test_unknown_event_is_rejected():
    with pytest.raises(ValueError, match="unknown outlier event 'refused'"):
        detector().report(A, "refused", now=1.0)


def test_multiplier_doubles_the_second_ejection_and_decays_per_healthy_sweep():
    od = detector(consecutive_5xx_errors=1, max_ejection_percent=100)  # interval 10, base 30
    first = od.report(A, 503, now=1.0)
    assert first is not None
    assert (first.duration, first.until) == (30.0, 40.0)
    assert od.sweep(39.9) == []
    assert od.sweep(40.0) == [A]
    second = od.report(A, 503, now=41.0)
    assert second is not None
    assert (second.duration, second.multiplier) == (60.0, 2)
    assert second.until == 110.0  # 100 - 41 < 60 <= 110 - 41
    assert od.sweep(100.0) == []
    assert od.sweep(110.0) == [A]
    assert od.snapshot()[A]["multiplier"] == 2  # not decremented by the un-ejecting sweep
    od.sweep(120.0)
    assert od.snapshot()[A]["multiplier"] == 1
    od.sweep(130.0)
    assert od.snapshot()[A]["multiplier"] == 0
    third = od.report(A, 503, now=131.0)
    assert third is not None
    assert (third.duration, third.multiplier) == (30.0, 1)


def test_multiplier_decays_across_a_long_idle_stretch_in_one_call():
    od = detector(consecutive_5xx_errors=1, max_ejection_percent=100)
    for t in (1.0, 41.0):
        ejection = od.report(A, 503, now=t)
        assert ejection is not None
        od.sweep(ejection.until)
    assert od.snapshot()[A]["multiplier"] == 2
    od.sweep(1e9)
    assert od.snapshot()[A]["multiplier"] == 0


@pytest.mark.parametrize(
    ("base", "durations", "multipliers"),
    [
        (120.0, [120.0, 240.0, 300.0, 300.0, 300.0, 300.0], [1, 2, 3, 4, 4, 4]),
        (400.0, [400.0, 400.0, 400.0], [1, 2, 2]),  # max ejection time is never below the base
    ],
)
def test_ejection_time_is_capped_at_300s(base, durations, multipliers):
    od = detector(consecutive_5xx_errors=1, max_ejection_percent=100, base_ejection_time=base)
    seen, ks, t = [], [], 0.5
    for _ in durations:
        ejection = od.report(A, 503, now=t)
        assert ejection is not None
        seen.append(ejection.duration)
        ks.append(ejection.multiplier)
        assert od.sweep(ejection.until) == [A]
        t = ejection.until + 0.5
    assert seen == durations
    assert ks == multipliers  # grows while k × base < max + base, so it decays back quickly


def test_hosts_changing_keeps_survivors_state():
    od = detector(2, consecutive_5xx_errors=2, max_ejection_percent=100)
    assert od.report(A, 503, now=1.0) is None
    od.report(B, 503, now=1.0)
    od.report(B, 503, now=1.0)
    assert od.is_ejected(B)
    od.set_hosts([B, C])
    assert od.is_ejected(B)
    assert od.ejections_active == 1
    assert set(od.snapshot()) == {B, C}
    assert od.report(A, 503, now=2.0) is None  # removed hosts are ignored
    od.set_hosts([A, C])
    assert od.ejections_active == 0
    assert counters(od, A) == (0, 0, 0)  # A came back as a new host
    od.set_hosts([A, C, B])
    assert not od.is_ejected(B)


def test_ejection_percent_uses_the_current_host_count():
    od = detector(1, consecutive_5xx_errors=1, max_ejection_percent=50)
    assert od.report(A, 503, now=1.0) is None  # 100% > 50%
    od.set_hosts([A, B])
    assert od.report(A, 503, now=1.0) is not None  # 50%


def test_sweeps_are_anchored_at_start():
    od = detector(consecutive_5xx_errors=1, max_ejection_percent=100, start=1000.25, interval=0.1)
    ejection = od.report(A, 503, now=1000.3)  # base 30 s
    assert ejection is not None
    assert ejection.until == pytest.approx(1030.35)
    assert od.sweep(1030.34) == []
    assert od.sweep(1030.36) == [A]


def test_lazy_sweeps_match_sweeping_at_every_tick():
    """Calling ``sweep`` only when traffic arrives gives the same history as a real timer."""
    rng = random.Random(7)
    for _ in range(30):
        settings = {
            "consecutive_5xx_errors": rng.choice([1, 2, 3]),
            "interval": rng.choice([0.1, 1.0, 2.5]),
            "base_ejection_time": rng.choice([0.3, 1.0, 4.0, 200.0]),
            "max_ejection_percent": rng.choice([34, 50, 100]),
            "min_health_percent": rng.choice([0, 50]),
        }
        start = rng.uniform(0, 100)
        lazy, ticked = detector(3, start, **settings), detector(3, start, **settings)
        t, tick = start, 1
        for _ in range(300):
            t += rng.expovariate(2.0)
            while start + tick * ticked.interval <= t:
                ticked.sweep(start + tick * ticked.interval)
                tick += 1
            host = rng.choice([A, B, C])
            status = rng.choice([200, 500, 503, 503])
            assert lazy.report(host, status, t) == ticked.report(host, status, t)
            assert lazy.snapshot() == ticked.snapshot()
            assert lazy.healthy(HOSTS[:3]) == ticked.healthy(HOSTS[:3])
            for snap in lazy.snapshot().values():
                if snap["ejected_at"] is not None:
                    assert snap["ejected_at"] <= t < snap["ejected_until"]
        assert lazy.stats() == ticked.stats()
