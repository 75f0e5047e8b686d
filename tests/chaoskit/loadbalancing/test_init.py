import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import chaoskit.loadbalancing as lbpkg
from chaoskit.config.destination_rule import ConsistentHashLB, LoadBalancerSettings
from chaoskit.loadbalancing import (
    SIMPLE_LOAD_BALANCERS,
    LeastRequest,
    Maglev,
    RandomChoice,
    RingHash,
    RoundRobin,
    UpstreamHost,
    make_load_balancer,
)

from .helpers import BALANCERS, make_hosts


def test_all_is_sorted_and_importable():
    assert lbpkg.__all__ == sorted(lbpkg.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(lbpkg, name) for name in lbpkg.__all__)


@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        (None, LeastRequest),
        (LoadBalancerSettings(), LeastRequest),
        (LoadBalancerSettings(simple="UNSPECIFIED"), LeastRequest),
        (LoadBalancerSettings(simple="LEAST_REQUEST"), LeastRequest),
        (LoadBalancerSettings(simple="LEAST_CONN"), LeastRequest),
        (LoadBalancerSettings(simple="ROUND_ROBIN"), RoundRobin),
        (LoadBalancerSettings(simple="RANDOM"), RandomChoice),
        (LoadBalancerSettings(simple="PASSTHROUGH"), RoundRobin),
    ],
)
def test_simple_names(settings, kind):
    assert type(make_load_balancer(settings)) is kind


def test_consistent_hash_algorithms_and_sizes():
    ring = make_load_balancer(LoadBalancerSettings(consistent_hash=ConsistentHashLB()))
    assert isinstance(ring, RingHash) and ring.minimum_ring_size == 1024
    ring = make_load_balancer(
        LoadBalancerSettings(consistent_hash=ConsistentHashLB(minimum_ring_size=4096))
    )
    assert isinstance(ring, RingHash) and ring.minimum_ring_size == 4096
    maglev = make_load_balancer(
        LoadBalancerSettings(consistent_hash=ConsistentHashLB(algorithm="MAGLEV"))
    )
    assert isinstance(maglev, Maglev) and maglev.table_size == 65537
    maglev = make_load_balancer(
        LoadBalancerSettings(consistent_hash=ConsistentHashLB(algorithm="MAGLEV", table_size=251))
    )
    assert isinstance(maglev, Maglev) and maglev.table_size == 251


def test_each_call_gives_a_fresh_balancer():
    settings = LoadBalancerSettings(simple="ROUND_ROBIN")
    assert make_load_balancer(settings) is not make_load_balancer(settings)


def test_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown load balancer 'FASTEST'"):
        make_load_balancer(LoadBalancerSettings(simple="FASTEST"))


def test_registry_covers_every_istio_simple_name():
    from chaoskit.config.destination_rule import SIMPLE_LB

    assert set(SIMPLE_LB) - {"UNSPECIFIED"} <= set(SIMPLE_LOAD_BALANCERS)


# -- what every balancer must do ---------------------------------------------------------------


@pytest.mark.parametrize("name", BALANCERS)
@pytest.mark.parametrize("hash_key", [None, 12345])
def test_empty_host_list_gives_none(name, hash_key):
    assert BALANCERS[name]().choose([], random.Random(0), hash_key) is None


@pytest.mark.parametrize("name", BALANCERS)
def test_same_seed_same_picks(name):
    hosts = make_hosts(5, [1, 1, 2, 3, 5]) if name != "least_request" else make_hosts(5)
    for i, h in enumerate(hosts):
        h.active_requests = i % 3

    def run(seed):
        lb, rng = BALANCERS[name](), random.Random(seed)
        return [lb.choose(hosts, rng).key for _ in range(100)]

    assert run(42) == run(42)


@given(
    weights=st.lists(st.integers(1, 10), min_size=1, max_size=20),
    loads=st.lists(st.integers(0, 5), min_size=20, max_size=20),
    seed=st.integers(0, 2**32),
    hash_keys=st.lists(st.none() | st.integers(0, 2**64 - 1), min_size=1, max_size=5),
)
def test_every_balancer_returns_one_of_the_given_hosts(weights, loads, seed, hash_keys):
    hosts = [
        UpstreamHost(f"10.0.{i // 250}.{i % 250 + 1}", 8080, weight=w, active_requests=loads[i])
        for i, w in enumerate(weights)
    ]
    # Maglev gets a small prime table here: the churn rebuilds it at almost every call, and a
    # 65537-entry build takes ~20 ms in Python; the algorithm is the same at any size.
    factories = {**BALANCERS, "maglev": lambda: Maglev(table_size=1021)}
    for factory in factories.values():
        lb, rng, churn = factory(), random.Random(seed), random.Random(seed + 1)
        for key in hash_keys * 3:
            picked = lb.choose(hosts, rng, key)
            assert any(picked is h for h in hosts)
            # Hosts ejected and restored between calls: still a host of this call's list.
            some = [h for h in hosts if churn.random() < 0.6] or hosts[-1:]
            picked = lb.choose(some, rng, key)
            assert any(picked is h for h in some)
