"""``latency``, ``bandwidth``, ``slicer``: how the bytes of one direction flow (Toxiproxy's
``latency``, ``bandwidth`` and ``slicer`` toxics, toxics/*.go).

Each acts on one ``stream``: ``downstream`` (upstream → client, Toxiproxy's default),
``upstream`` (client → upstream) or ``both``. They combine, with each other and with one
ending: latencies add up, the lowest bandwidth wins, the first slicer wins.

- ``latency``: every chunk is delivered that long after it arrived, in order; chunks in flight
  overlap (a stream keeps its throughput, as a long network path does). The value is drawn
  **once per connection** (``fixedDelay`` or a distribution, as ``delay``'s), so one request
  over the connection never sees several draws (the surprise of Toxiproxy's per-chunk jitter,
  toxiproxy#239).
- ``bandwidth``: at most ``bytesPerSecond`` bytes per second, paced in small writes.
- ``slicer``: each chunk is written in slices of ``averageSize`` ± ``sizeVariation`` bytes,
  ``delay`` apart — fragmented writes that parsers assuming one read = one message trip on.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

from chaoskit.config.fields import Fields
from chaoskit.faults.actions.delay import FaultDelay, parse_delay, sample_delay
from chaoskit.faults.tcp.base import Stream, TcpAction, parse_stream

if TYPE_CHECKING:
    from chaoskit.faults.tcp.plan import ConnectionDraft


@dataclasses.dataclass(frozen=True, slots=True)
class TcpLatency:
    delay: FaultDelay
    stream: Stream


@dataclasses.dataclass(frozen=True, slots=True)
class TcpBandwidth:
    bytes_per_second: int
    stream: Stream


@dataclasses.dataclass(frozen=True, slots=True)
class TcpSlicer:
    average_size: int
    size_variation: int
    #: Seconds between two slices.
    delay: float
    stream: Stream


def _parse_latency(spec: Fields) -> TcpLatency | None:
    if (f := spec.obj("latency")) is None:
        return None
    stream = parse_stream(f)
    delay = parse_delay(f)  # fixedDelay or a distribution; reports unknown fields
    return TcpLatency(delay, stream) if delay is not None else None


def _fold_latency(draft: ConnectionDraft, latency: TcpLatency, rng: random.Random) -> None:
    seconds = sample_delay(latency.delay, rng)
    for d in draft.directions(latency.stream):
        d.latency += seconds


def _parse_bandwidth(spec: Fields) -> TcpBandwidth | None:
    if (f := spec.obj("bandwidth")) is None:
        return None
    stream = parse_stream(f)
    rate = f.int("bytesPerSecond", required=True, minimum=1)
    f.done()
    return TcpBandwidth(rate, stream) if rate is not None else None


def _fold_bandwidth(draft: ConnectionDraft, bandwidth: TcpBandwidth, rng: random.Random) -> None:
    rate = bandwidth.bytes_per_second
    for d in draft.directions(bandwidth.stream):
        d.bytes_per_second = rate if d.bytes_per_second is None else min(d.bytes_per_second, rate)


def _parse_slicer(spec: Fields) -> TcpSlicer | None:
    if (f := spec.obj("slicer")) is None:
        return None
    stream = parse_stream(f)
    average = f.int("averageSize", required=True, minimum=1)
    variation = f.int("sizeVariation", minimum=0)
    delay = f.duration("delay", allow_zero=True)
    f.done()
    if average is None or (variation is None and f.has("sizeVariation")):
        return None
    if delay is None and f.has("delay"):
        return None
    variation = variation or 0
    if variation >= average:
        f.error(
            "sizeVariation",
            f"sizeVariation ({variation}) must be smaller than averageSize ({average})",
        )
        return None
    return TcpSlicer(average, variation, delay or 0.0, stream)


def _fold_slicer(draft: ConnectionDraft, slicer: TcpSlicer, rng: random.Random) -> None:
    for d in draft.directions(slicer.stream):
        if d.slicer is None:
            d.slicer = slicer
    if not draft.slicer_seed:
        draft.slicer_seed = rng.getrandbits(63) or 1


def slices(data: bytes, slicer: TcpSlicer, rng: random.Random) -> Iterator[bytes]:
    """``data`` cut into slices of ``averageSize`` ± ``sizeVariation`` bytes (at least one byte
    each), sizes drawn from ``rng``; joined, they are ``data``."""
    low = max(1, slicer.average_size - slicer.size_variation)
    high = slicer.average_size + slicer.size_variation
    start = 0
    while start < len(data):
        size = rng.randint(low, high)
        yield data[start : start + size]
        start += size


LATENCY: TcpAction[TcpLatency] = TcpAction(
    name="latency",
    attr="latency",
    ending=False,
    parse=_parse_latency,
    fold=_fold_latency,
    doc=(
        "`{fixedDelay: D}` or a distribution as in `delay`, and `stream`: every chunk of that "
        "direction is delivered D later, in order (drawn once per connection)."
    ),
)
BANDWIDTH: TcpAction[TcpBandwidth] = TcpAction(
    name="bandwidth",
    attr="bandwidth",
    ending=False,
    parse=_parse_bandwidth,
    fold=_fold_bandwidth,
    doc="`{bytesPerSecond: N ≥ 1, stream}`: that direction flows at most N bytes per second.",
)
SLICER: TcpAction[TcpSlicer] = TcpAction(
    name="slicer",
    attr="slicer",
    ending=False,
    parse=_parse_slicer,
    fold=_fold_slicer,
    doc=(
        "`{averageSize: N ≥ 1, sizeVariation: V < N, delay: D, stream}`: each chunk is "
        "written in slices of N ± V bytes, D apart."
    ),
)
