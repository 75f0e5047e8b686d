import threading

from chaoskit.records import (
    AttemptRecord,
    Record,
    RecordLog,
    ResponseFlag,
    explain_flags,
    flag_meanings,
    format_flags,
    order_flags,
)


def rec(seq: int) -> Record:
    return Record(
        seq,
        f"id{seq}",
        0.0,
        0.001,
        "mesh",
        "",
        "GET",
        "http",
        "a",
        "/",
        200,
        attempts=(
            AttemptRecord(1, "127.0.0.1:1", "response", 503),
            AttemptRecord(2, "127.0.0.1:2", "response", 200),
        ),
    )


def test_flags_in_envoys_order():
    assert order_flags({"URX", "UF"}) == ("UF", "URX")
    assert order_flags(["FI", "DI"]) == ("DI", "FI")
    assert format_flags(()) == "-" and format_flags(("UF", "URX")) == "UF,URX"


def test_every_flag_explains_itself():
    """The one source of every flag explanation (report legend, ``chaoskit run``): each flag
    has Envoy's long name and a meaning, and is still the plain two- to four-letter code."""
    for flag in ResponseFlag:
        assert flag.long_name[:1].isupper() and " " not in flag.long_name, flag
        assert len(flag.meaning) > 10, flag
        assert flag == flag.value and ResponseFlag(flag.value) is flag and f"{flag}" == flag.value
    assert ResponseFlag.URX.long_name == "UpstreamRetryLimitExceeded"
    assert ResponseFlag.UO.meaning.startswith("a circuit breaker refused it")
    assert len({f.long_name for f in ResponseFlag}) == len(ResponseFlag)


def test_flag_meanings_are_in_envoys_order_and_skip_unknown_codes():
    assert flag_meanings(["URX", "UF", "XX", "UF"]) == [ResponseFlag.UF, ResponseFlag.URX]
    assert flag_meanings(()) == []
    assert explain_flags({"URX": 2, "XX": 1, "UF": 3}) == [
        f"flag UF on 3 requests: {ResponseFlag.UF.meaning} [UpstreamConnectionFailure]",
        f"flag URX on 2 requests: {ResponseFlag.URX.meaning} [UpstreamRetryLimitExceeded]",
    ]


def test_ring_is_bounded_but_counts_everything():
    log = RecordLog(capacity=3)
    for _ in range(5):
        log.append(rec(log.next_seq()))
    assert [r.seq for r in log.snapshot()] == [3, 4, 5]
    assert log.total == 5 and len(log) == 3
    log.clear()
    assert log.snapshot() == [] and log.total == 5


def test_concurrent_appends_are_safe():
    log = RecordLog(capacity=10_000)

    def worker() -> None:
        for _ in range(500):
            log.append(rec(log.next_seq()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.total == 2000 and len({r.seq for r in log}) == 2000


def test_retries_and_dict():
    r = rec(1)
    assert r.retries == 1
    assert r.to_dict()["attempts"][0]["status"] == 503
