import random

from hypothesis import given
from hypothesis import strategies as st

from chaoskit.config.destination_rule import (
    UNLIMITED,
    ConnectionPoolSettings,
    HTTPSettings,
    RetryBudget,
    TCPSettings,
)
from chaoskit.resilience.circuit_breaker import (
    CircuitBreaker,
    Granted,
    Overflow,
    Queued,
    RequestWindow,
)


def pool(
    connections: int | None = None,
    pending: int | None = None,
    requests: int | None = None,
    retries: int | None = None,
) -> ConnectionPoolSettings:
    return ConnectionPoolSettings(
        tcp=TCPSettings(max_connections=connections),
        http=HTTPSettings(
            http1_max_pending_requests=pending, http2_max_requests=requests, max_retries=retries
        ),
    )


def test_istio_circuit_breaking_task_two_concurrent_pass_the_third_overflows():
    # httpbin DR: maxConnections 1, http1MaxPendingRequests 1.
    cb = CircuitBreaker(pool(connections=1, pending=1))
    first, second, third = cb.admit(), cb.admit(), cb.admit()
    assert isinstance(first, Granted)
    assert isinstance(second, Queued)
    assert third == Overflow("pending")
    assert cb.snapshot() == {"rq_active": 1, "rq_pending": 1, "cx_active": 1, "rq_retry_active": 0}
    assert cb.upstream_rq_pending_overflow == 1
    assert cb.upstream_cx_overflow == 1  # the queued one wanted a second connection
    cb.check_invariants()

    # The first finishes: its connection goes straight to the queued request.
    assert cb.release(first.ticket) == second.ticket
    assert cb.snapshot()["rq_active"] == 1
    assert cb.snapshot()["rq_pending"] == 0
    assert cb.release(second.ticket) is None
    assert cb.snapshot() == {"rq_active": 0, "rq_pending": 0, "cx_active": 0, "rq_retry_active": 0}
    cb.check_invariants()


def test_queue_drains_in_fifo_order():
    cb = CircuitBreaker(pool(connections=1, pending=3))
    active = cb.admit()
    queued = [cb.admit() for _ in range(3)]
    assert all(isinstance(q, Queued) for q in queued)
    assert isinstance(cb.admit(), Overflow)
    order = []
    ticket = active.ticket
    while (ticket := cb.release(ticket)) is not None:
        order.append(ticket)
        cb.check_invariants()
    assert order == [q.ticket for q in queued]
    assert cb.snapshot()["rq_active"] == 0


def test_a_free_connection_is_not_stolen_from_the_queue():
    cb = CircuitBreaker(pool(connections=1, pending=5))
    a, b = cb.admit(), cb.admit()
    assert cb.release(a.ticket) == b.ticket
    # A newcomer arriving right after the wake-up still finds the connection taken.
    assert isinstance(cb.admit(), Queued)


def test_http2_max_requests_overflows_even_with_free_connections():
    cb = CircuitBreaker(pool(requests=2))
    assert isinstance(cb.admit(), Granted)
    assert isinstance(cb.admit(), Granted)
    assert cb.admit() == Overflow("max_requests")
    assert cb.stats()["upstream_rq_pending_overflow"] == 1  # Envoy counts it there too
    assert cb.upstream_cx_overflow == 0
    cb.check_invariants()


def test_max_requests_does_not_reject_a_request_that_queues_for_a_connection():
    # Envoy checks maxRequests when a connection is attached, by then one has been freed.
    cb = CircuitBreaker(pool(connections=1, pending=1, requests=1))
    first, second = cb.admit(), cb.admit()
    assert isinstance(second, Queued)
    assert cb.release(first.ticket) == second.ticket
    cb.check_invariants()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_retry_budget_replaces_max_retries_and_grows_with_requests_in_flight():
    # maxRetries 1 is ignored once a budget is set (Envoy: the budget overrides it).
    cb = CircuitBreaker(pool(retries=1), RetryBudget(percent=20, min_retry_concurrency=3))
    assert cb.retry_limit() == 3  # nothing in flight: the floor
    assert all(cb.try_retry() for _ in range(3))
    assert not cb.try_retry()
    assert cb.upstream_rq_retry_overflow == 1
    tickets = [cb.admit() for _ in range(24)]  # 24 in flight: 20 % is 4.8, rounded down
    assert cb.retry_limit() == 4 and cb.limits()["max_retries"] == 4
    assert cb.try_retry() and not cb.try_retry()
    for t in tickets[:20]:
        assert isinstance(t, Granted)
        cb.release(t.ticket)
    assert cb.retry_limit() == 3  # shrinks again; running retries are not cut (4 > 3)
    assert cb.active_retries == 4
    assert not cb.try_retry()
    cb.check_invariants()


def test_pending_requests_count_towards_the_budget():
    cb = CircuitBreaker(pool(connections=5), RetryBudget(percent=50, min_retry_concurrency=0))
    admitted = [cb.admit() for _ in range(10)]
    assert sum(isinstance(a, Queued) for a in admitted) == 5
    assert cb.retry_limit() == 5  # 50 % of 5 active + 5 pending


def test_retry_budget_defaults_are_envoys():
    cb = CircuitBreaker(None, RetryBudget())
    for _ in range(100):
        cb.admit()
    assert cb.retry_limit() == 20  # 20 % of 100, minimum 3


def test_with_a_budget_interval_the_budget_is_a_share_of_requests_started_in_it():
    clock = FakeClock()
    budget = RetryBudget(percent=10, min_retry_concurrency=1, budget_interval=10.0)
    cb = CircuitBreaker(None, budget, clock=clock)
    for _ in range(50):
        cb.release(cb.admit().ticket)  # finished at once: nothing stays in flight
    assert cb.active_requests == 0
    assert cb.retry_limit() == 5  # 10 % of the 50 started within the last 10 s
    clock.now = 5.0
    for _ in range(30):
        cb.release(cb.admit().ticket)
    assert cb.retry_limit() == 8
    clock.now = 10.5  # the first 50 are more than one interval old
    assert cb.retry_limit() == 3
    clock.now = 30.0
    assert cb.retry_limit() == 1  # the floor


def test_request_window_expires_slot_by_slot_like_envoy():
    clock = FakeClock()
    w = RequestWindow(10.0, clock)  # ten slots of 1 s
    for t in (0.0, 0.5):
        clock.now = t
        for _ in range(5):
            w.add()
    assert w.total() == 10
    clock.now = 1.5  # the running count goes into slot 0 (the next one is zeroed)
    for _ in range(3):
        w.add()
    assert w.total() == 13
    clock.now = 11.0  # 9.5 s later: nine slots zeroed, slot 0 (t < 1 s) among them
    assert w.total() == 3
    clock.now = 30.0
    assert w.total() == 0


def test_max_retries_limits_concurrent_retries():
    cb = CircuitBreaker(pool(retries=1))
    assert cb.try_retry()
    assert not cb.try_retry()  # skipped: the caller adds UO, without x-envoy-overloaded
    assert cb.upstream_rq_retry_overflow == 1
    assert cb.snapshot()["rq_retry_active"] == 1
    cb.retry_done()
    assert cb.try_retry()
    cb.retry_done()
    cb.retry_done()  # one too many: stays at zero
    assert cb.active_retries == 0
    cb.check_invariants()


def test_cancel_a_queued_ticket_frees_its_pending_slot():
    cb = CircuitBreaker(pool(connections=1, pending=1))
    first, second = cb.admit(), cb.admit()
    assert isinstance(cb.admit(), Overflow)
    assert cb.cancel(second.ticket) is None
    assert cb.pending_requests == 0
    assert cb.upstream_rq_cancelled == 1
    third = cb.admit()
    assert isinstance(third, Queued)
    assert cb.release(first.ticket) == third.ticket
    cb.check_invariants()


def test_cancel_after_wake_up_releases_the_connection_to_the_next_waiter():
    # The route timeout fired just as release() woke the ticket: cancel gives the slot on.
    cb = CircuitBreaker(pool(connections=1, pending=2))
    first, second, third = cb.admit(), cb.admit(), cb.admit()
    assert cb.release(first.ticket) == second.ticket
    assert cb.cancel(second.ticket) == third.ticket
    assert cb.snapshot()["rq_active"] == 1
    cb.check_invariants()


def test_double_and_unknown_releases_are_harmless():
    cb = CircuitBreaker(pool(connections=1, pending=1))
    first, second = cb.admit(), cb.admit()
    assert cb.release(first.ticket) == second.ticket
    assert cb.release(first.ticket) is None
    assert cb.cancel(first.ticket) is None
    assert cb.release(12345) is None
    assert cb.snapshot()["rq_active"] == 1
    assert cb.release(second.ticket) is None
    assert cb.snapshot() == {"rq_active": 0, "rq_pending": 0, "cx_active": 0, "rq_retry_active": 0}


def test_release_of_a_queued_ticket_cancels_it():
    cb = CircuitBreaker(pool(connections=1, pending=1))
    cb.admit()
    second = cb.admit()
    assert cb.release(second.ticket) is None
    assert cb.pending_requests == 0
    assert cb.upstream_rq_cancelled == 1


def test_defaults_are_unlimited():
    for limits in (None, ConnectionPoolSettings(), pool(0, 0, 0, 0)):
        cb = CircuitBreaker(limits)
        assert cb.limits() == dict.fromkeys(
            ("max_connections", "max_pending_requests", "max_requests", "max_retries"), UNLIMITED
        )
        assert all(isinstance(cb.admit(), Granted) for _ in range(1000))
        assert all(cb.try_retry() for _ in range(1000))
        assert sum(cb.stats().values()) == 0
        cb.check_invariants()


def run_ops(cb: CircuitBreaker, ops: list[tuple[str, int]]) -> None:
    """Apply ops the way an async caller would, checking the invariants after each step."""
    active: list[int] = []
    queued: list[int] = []
    retries = 0

    def woke(ticket: int | None) -> None:
        if ticket is not None:
            assert ticket == queued[0], "wake-ups must be FIFO"
            active.append(queued.pop(0))

    for op, pick in ops:
        if op == "admit":
            match cb.admit():
                case Granted(ticket):
                    active.append(ticket)
                case Queued(ticket):
                    queued.append(ticket)
        elif op == "release" and active:
            woke(cb.release(active.pop(pick % len(active))))
        elif op == "cancel" and queued:
            assert cb.cancel(queued.pop(pick % len(queued))) is None
        elif op == "cancel_active" and active:
            woke(cb.cancel(active.pop(pick % len(active))))
        elif op == "release_again":
            assert cb.release(-pick - 1) is None
        elif op == "retry" and cb.try_retry():
            retries += 1
        elif op == "retry_done" and retries:
            retries -= 1
            cb.retry_done()
        cb.check_invariants()
        assert cb.active_requests == len(active)
        assert cb.pending_requests == len(queued)
        assert cb.active_retries == retries
    while active:  # finishing everything also drains the queue
        woke(cb.release(active.pop(0)))
    assert not queued
    for _ in range(retries):
        cb.retry_done()
    assert cb.snapshot() == {"rq_active": 0, "rq_pending": 0, "cx_active": 0, "rq_retry_active": 0}
    cb.check_invariants()


OPS = ("admit", "release", "cancel", "cancel_active", "release_again", "retry", "retry_done")


def test_random_sequences_keep_the_invariants():
    rng = random.Random(20240607)
    for _ in range(200):
        limits = pool(*(rng.choice([None, 1, 2, 3, 5]) for _ in range(4)))
        ops = [(rng.choice(OPS), rng.randrange(100)) for _ in range(rng.randrange(1, 80))]
        run_ops(CircuitBreaker(limits), ops)


@given(
    limits=st.tuples(*[st.sampled_from([None, 0, 1, 2, 4])] * 4),
    ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50)), max_size=60),
)
def test_any_sequence_keeps_the_invariants(limits, ops):
    run_ops(CircuitBreaker(pool(*limits)), ops)
