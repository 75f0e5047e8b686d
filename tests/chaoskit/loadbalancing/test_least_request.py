import random
from collections import Counter

import pytest

from chaoskit.loadbalancing import LeastRequest
from chaoskit.loadbalancing.least_request import load_scaled_weight

from .helpers import binomial_bounds, make_hosts


class ScriptedRandom(random.Random):
    """``randrange`` answers from a script, to pin down which hosts P2C draws."""

    def __init__(self, script):
        super().__init__(0)
        self.script = list(script)

    def randrange(self, *args, **kwargs):
        return self.script.pop(0)


def counts(lb, hosts, n, seed=1):
    rng = random.Random(seed)
    return Counter(lb.choose(hosts, rng).key for _ in range(n))


def test_p2c_is_uniform_when_idle():
    hosts = make_hosts(3)
    got = counts(LeastRequest(), hosts, 3000)
    # Equal loads: the first draw wins, so each count ~ Binomial(3000, 1/3), σ ≈ 25.8;
    # allow mean ± 4.5σ ≈ [884, 1116].
    low, high = binomial_bounds(3000, 1 / 3)
    assert all(low <= got[h.key] <= high for h in hosts), got


def test_p2c_prefers_the_less_loaded_host():
    idle, busy, busiest = make_hosts(3)
    busy.active_requests, busiest.active_requests = 1, 2
    got = counts(LeastRequest(), [idle, busy, busiest], 3000)
    # idle wins every pair it is in (2 of the 3 pairs); busy only the pair {busy, busiest}.
    # idle ~ Binomial(3000, 2/3): mean 2000, σ ≈ 25.8; allow mean ± 4.5σ ≈ [1884, 2116].
    low, high = binomial_bounds(3000, 2 / 3)
    assert low <= got[idle.key] <= high, got
    assert got[busiest.key] == 0
    assert got[idle.key] + got[busy.key] == 3000


def test_p2c_draws_two_distinct_hosts():
    """With two hosts the pair is always both, so the busier one is never chosen."""
    busy, idle = make_hosts(2)
    busy.active_requests = 1
    assert counts(LeastRequest(), [busy, idle], 500) == {idle.key: 500}


def test_p2c_tie_goes_to_the_first_drawn():
    a, b, c = make_hosts(3)
    lb = LeastRequest()
    assert lb.choose([a, b, c], ScriptedRandom([2, 0])) is c  # draws c then a: tie, c
    assert lb.choose([a, b, c], ScriptedRandom([0, 1])) is a  # draws a then c (1 skips a): tie
    b.active_requests = 3
    assert lb.choose([a, b, c], ScriptedRandom([1, 1])) is c  # draws b then c: c is idle


def test_single_host_is_chosen_even_when_loaded():
    (only,) = make_hosts(1)
    only.active_requests = 100
    assert LeastRequest().choose([only], random.Random(0)) is only


def test_weighted_mode_is_weighted_round_robin_when_idle():
    light, heavy = make_hosts(2, [1, 3])
    lb, rng = LeastRequest(), random.Random(0)
    seq = [lb.choose([light, heavy], rng).key for _ in range(400)]
    for start in range(0, 400, 4):
        assert seq[start : start + 4].count(heavy.key) == 3


def test_weighted_mode_divides_weight_by_load():
    light, heavy = make_hosts(2, [1, 3])
    heavy.active_requests = 2  # effective weight 3 / (2 + 1) = 1, same as light's 1 / 1
    assert load_scaled_weight(heavy) == pytest.approx(1.0)
    assert load_scaled_weight(light) == pytest.approx(1.0)
    got = counts(LeastRequest(), [light, heavy], 100)
    assert got == {light.key: 50, heavy.key: 50}


def test_weighted_mode_reacts_to_load_at_once():
    light, heavy = make_hosts(2, [1, 3])
    lb, rng = LeastRequest(), random.Random(0)
    heavy.active_requests = 2  # effective weights 1 : 1
    loaded = Counter(lb.choose([light, heavy], rng).key for _ in range(40))
    heavy.active_requests = 0  # back to 1 : 3
    idle = Counter(lb.choose([light, heavy], rng).key for _ in range(40))
    assert abs(loaded[heavy.key] - 20) <= 1
    assert abs(idle[heavy.key] - 30) <= 2


def test_empty():
    assert LeastRequest().choose([], random.Random(0)) is None
