from chaoskit.experiment.journal import (
    Check,
    FaultWindow,
    Journal,
    Phase,
    Sample,
    StepResult,
    summarize,
)


def test_round_trip_and_summaries():
    j = Journal("e", "t", "e.yaml", 7, "2026-01-01T00:00:00+00:00", {"chaoskit": "0.1.0"})
    j.phases.append(
        Phase("method", 0.0, 1.0, [Check("method", "c", "probe", "x", "y", False, "d")])
    )
    j.faults.append(FaultWindow("f", 0.1, 0.9, ("UpstreamFault/default/f",)))
    j.samples.append(Sample(0.2, "method", "GET /", 503, 0.01, "", "id", ("URX",), 2, True))
    j.rollbacks.append(StepResult("restore", True))
    back = Journal.from_dict(j.to_dict())
    assert back == j
    assert back.checks[0].detail == "d" and back.phase("method") is back.phases[0]
    assert summarize(j.samples) == ({"503": 1}, {"URX": 1})
