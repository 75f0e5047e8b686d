"""Endpoint weights as Envoy reads them, shared by the weighted strategies."""

from __future__ import annotations

from collections.abc import Sequence

from chaoskit.loadbalancing.base import UpstreamHost


def weight_of(host: UpstreamHost) -> int:
    """The host's LB weight, at least 1: Envoy rejects 0 and Istio writes 1 for "unset"."""
    return max(host.weight, 1)


def all_equal(hosts: Sequence[UpstreamHost]) -> bool:
    """True when weights play no part, which selects Envoy's unweighted code paths."""
    return len({weight_of(h) for h in hosts}) <= 1
