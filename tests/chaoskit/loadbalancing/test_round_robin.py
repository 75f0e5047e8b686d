import random

from chaoskit.loadbalancing import RoundRobin, UpstreamHost

from .helpers import make_hosts


def picks(rr: RoundRobin, hosts: list[UpstreamHost], n: int) -> list[str]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        host = rr.choose(hosts, rng)
        assert host is not None
        out.append(host.key)
    return out


def test_equal_weights_are_exactly_even():
    hosts = make_hosts(3)
    seq = picks(RoundRobin(), hosts, 300)
    assert {h.key: seq.count(h.key) for h in hosts} == {h.key: 100 for h in hosts}
    # Not just even in total: any 3 consecutive picks hit each host once.
    assert all(len(set(seq[i : i + 3])) == 3 for i in range(len(seq) - 2))


def test_starts_with_the_first_host_and_rotates_in_order():
    hosts = make_hosts(3)
    assert picks(RoundRobin(), hosts, 6) == [h.key for h in hosts] * 2


def test_weights_3_to_1_are_exact_in_every_cycle_and_interleaved():
    a, b = make_hosts(2, [3, 1])
    seq = picks(RoundRobin(), [a, b], 400)
    for start in range(0, 400, 4):
        cycle = seq[start : start + 4]
        assert cycle.count(a.key) == 3
        assert cycle.count(b.key) == 1
    # Smooth: the light host sits inside the cycle instead of after a burst of three.
    assert seq[:4] == [a.key, a.key, b.key, a.key]


def test_weights_5_2_1_are_proportional_over_full_cycles():
    hosts = make_hosts(3, [5, 2, 1])
    seq = picks(RoundRobin(), hosts, 80)
    for start in range(0, 80, 8):
        cycle = seq[start : start + 8]
        assert [cycle.count(h.key) for h in hosts] == [5, 2, 1]


def test_host_removed_midway_does_not_crash_and_stays_fair():
    a, b, c = make_hosts(3)
    rr = RoundRobin()
    picks(rr, [a, b, c], 4)  # leaves b with credit in hand
    seq = picks(rr, [a, c], 200)
    assert set(seq) == {a.key, c.key}
    assert abs(seq.count(a.key) - seq.count(c.key)) <= 2
    # After a short settling, the two survivors strictly alternate again.
    assert all(seq[i] != seq[i + 1] for i in range(2, len(seq) - 1))


def test_host_added_and_ejected_host_returning_get_their_share():
    a, b, c = make_hosts(3)
    rr = RoundRobin()
    picks(rr, [a, b], 5)
    seq = picks(rr, [a, b, c], 300)
    assert all(95 <= seq.count(h.key) <= 105 for h in (a, b, c))
    assert all(len(set(seq[i : i + 3])) == 3 for i in range(3, len(seq) - 2))


def test_state_follows_host_keys_not_objects():
    """Host objects rebuilt with the same address:port keep the rotation going."""
    rr = RoundRobin()
    first = picks(rr, make_hosts(3), 2)
    then = picks(rr, make_hosts(3), 4)
    assert first + then == [h.key for h in make_hosts(3)] * 2


def test_does_not_consume_randomness():
    rng = random.Random(7)
    state = rng.getstate()
    RoundRobin().choose(make_hosts(3), rng)
    assert rng.getstate() == state


def test_zero_weight_counts_as_one():
    hosts = make_hosts(2, [0, 1])
    seq = picks(RoundRobin(), hosts, 10)
    assert seq.count(hosts[0].key) == 5


def test_empty_and_single():
    assert RoundRobin().choose([], random.Random(0)) is None
    (only,) = make_hosts(1)
    assert RoundRobin().choose([only], random.Random(0)) is only
