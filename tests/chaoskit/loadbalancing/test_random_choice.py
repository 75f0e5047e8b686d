import random
from collections import Counter

from chaoskit.loadbalancing import RandomChoice

from .helpers import binomial_bounds, make_hosts


def counts(hosts, n, seed=1):
    lb, rng = RandomChoice(), random.Random(seed)
    return Counter(lb.choose(hosts, rng).key for _ in range(n))


def test_equal_weights_are_uniform():
    hosts = make_hosts(3)
    got = counts(hosts, 3000)
    # Each count ~ Binomial(3000, 1/3): mean 1000, σ ≈ 25.8; allow mean ± 4.5σ ≈ [884, 1116].
    low, high = binomial_bounds(3000, 1 / 3)
    assert all(low <= got[h.key] <= high for h in hosts), got


def test_unequal_weights_are_proportional():
    light, heavy = make_hosts(2, [1, 3])
    got = counts([light, heavy], 4000)
    # light ~ Binomial(4000, 1/4): mean 1000, σ ≈ 27.4; allow mean ± 4.5σ ≈ [877, 1123].
    low, high = binomial_bounds(4000, 1 / 4)
    assert low <= got[light.key] <= high, got
    assert got[light.key] + got[heavy.key] == 4000


def test_same_seed_same_sequence_and_seeds_differ():
    hosts = make_hosts(5, [1, 2, 3, 4, 5])

    def run(seed):
        lb, rng = RandomChoice(), random.Random(seed)
        return [lb.choose(hosts, rng).key for _ in range(50)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_empty_and_single():
    assert RandomChoice().choose([], random.Random(0)) is None
    (only,) = make_hosts(1)
    assert RandomChoice().choose([only], random.Random(0)) is only
