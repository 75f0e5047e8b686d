"""The shaping actions' YAML and the slicer's cuts."""

from __future__ import annotations

import random

import pytest

from chaoskit.faults.actions.delay import FaultDelay
from chaoskit.faults.tcp.shaping import TcpBandwidth, TcpLatency, TcpSlicer, slices
from tests.chaoskit.faults.helpers import fault

from .helpers import errors


def test_latency_takes_a_delay_or_a_distribution_and_a_stream() -> None:
    f = fault("host: p\nlatency: {fixedDelay: 100ms, stream: upstream}\n")
    assert f.latency == TcpLatency(FaultDelay("fixed", fixed_delay=0.1), "upstream")
    assert f.is_tcp and f.actions == ("latency",)
    g = fault("host: p\nlatency: {distribution: uniform, min: 1ms, max: 5ms}\n")
    assert g.latency is not None and g.latency.stream == "downstream"


def test_bandwidth_and_slicer() -> None:
    assert fault("host: p\nbandwidth: {bytesPerSecond: 10, stream: both}\n").bandwidth == (
        TcpBandwidth(10, "both")
    )
    f = fault("host: p\nslicer: {averageSize: 8, sizeVariation: 3, delay: 2ms}\n")
    assert f.slicer == TcpSlicer(8, 3, 0.002, "downstream")


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ("latency: {fixedDelay: 1ms, stream: sideways}", "spec.latency.stream",
         '"sideways" is not one of downstream, upstream, both'),
        ("latency: {fixedDelay: 1ms, percentage: {value: 5}}", "spec.latency.percentage",
         "selection is set once for the whole fault"),
        ("bandwidth: {}", "spec.bandwidth", '"bytesPerSecond" is required'),
        ("bandwidth: {bytesPerSecond: 0}", "spec.bandwidth.bytesPerSecond", "0 is less than 1"),
        ("slicer: {averageSize: 4, sizeVariation: 4}", "spec.slicer.sizeVariation",
         "sizeVariation (4) must be smaller than averageSize (4)"),
        ("slicer: {averageSize: 4, delay: fast}", "spec.slicer.delay", ""),
    ],
)  # fmt: skip
def test_shaping_errors(spec: str, path: str, message: str) -> None:
    found = errors("host: p\n" + spec)
    assert any(p == path and message in m for p, m in found), found


def test_slices_cover_the_data_in_sizes_within_the_variation() -> None:
    data = bytes(range(256)) * 4
    cut = list(slices(data, TcpSlicer(10, 3, 0.0, "downstream"), random.Random(1)))
    assert b"".join(cut) == data
    assert all(7 <= len(s) <= 13 for s in cut[:-1]) and 1 <= len(cut[-1]) <= 13
    again = list(slices(data, TcpSlicer(10, 3, 0.0, "downstream"), random.Random(1)))
    assert [len(s) for s in again] == [len(s) for s in cut]
