import random

from chaoskit.loadbalancing import (
    HOST_SELECTION_RETRY_MAX_ATTEMPTS,
    RandomChoice,
    RingHash,
    RoundRobin,
    choose_avoiding,
    stable_hash,
)

from .helpers import make_hosts


class Counting:
    """Wraps a balancer and counts the picks ``choose_avoiding`` asks of it."""

    def __init__(self, lb):
        self.lb, self.calls = lb, 0

    def choose(self, hosts, rng, hash_key=None):
        self.calls += 1
        return self.lb.choose(hosts, rng, hash_key)


def test_round_robin_skips_the_previous_host():
    a, b, c = make_hosts(3)
    lb = RoundRobin()
    assert choose_avoiding(lb, [a, b, c], random.Random(0), avoid=[a]) is b
    assert choose_avoiding(lb, [a, b, c], random.Random(0), avoid=[c]) is a  # c re-picked as a


def test_random_rarely_lands_on_an_avoided_host():
    hosts, rng, lb = make_hosts(3), random.Random(2), RandomChoice()
    landed = sum(choose_avoiding(lb, hosts, rng, avoid=[hosts[0]]) is hosts[0] for _ in range(1000))
    # Only when all 6 picks hit it: p = (1/3)^6 ≈ 0.00137, so ~1.4 of 1000 (σ ≈ 1.2); allow ≤ 8.
    assert landed <= 8


def test_all_hosts_avoided_still_gives_a_host_after_five_retries():
    hosts = make_hosts(2)
    lb = Counting(RoundRobin())
    host = choose_avoiding(lb, hosts, random.Random(0), avoid=hosts)
    assert any(host is h for h in hosts)
    assert lb.calls == 1 + HOST_SELECTION_RETRY_MAX_ATTEMPTS


def test_consistent_hash_keeps_the_same_host_even_when_avoided():
    hosts, lb = make_hosts(4), RingHash()
    key = stable_hash("alice")
    home = lb.choose(hosts, random.Random(0), key)
    assert choose_avoiding(lb, hosts, random.Random(0), avoid=[home], hash_key=key) is home


def test_no_hosts_gives_none_without_retrying():
    lb = Counting(RoundRobin())
    assert choose_avoiding(lb, [], random.Random(0), avoid=make_hosts(1)) is None
    assert lb.calls == 1
