"""Lessons come from the records' typed "client gave up" events, never from their notes."""

from __future__ import annotations

import re
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from chaoskit.experiment.lessons import lessons
from chaoskit.records import GaveUp, Record


def record(gave_up: GaveUp | None = None, notes: tuple[str, ...] | None = None) -> Record:
    if notes is None:  # as the proxy writes it: the event and its words
        notes = (gave_up.describe(),) if gave_up is not None else ()
    return Record(
        1, "id", 0.0, 0.1, "mesh", "", "GET", "http", "web", "/", 0, ("DC",),
        notes=notes, gave_up=gave_up,
    )  # fmt: skip


RETRYING = GaveUp(2.0, "", "", timeout=None, num_retries=2, per_try_timeout=1.0)


def test_the_pinned_lesson_texts():
    # the texts of docs/resilience.md, docs/experiments.md and tests/chaoskit/report/conftest.py
    assert lessons([record(RETRYING)]) == [
        "client gave up after 2.0s; the route allows 3 × 1s attempts — retries here are wasted"
    ]
    named = GaveUp(2.0, "productpage", "reviews", timeout=3.0, num_retries=2, per_try_timeout=1)
    assert lessons([record(named)]) == [
        "client productpage gave up after 2.0s waiting for reviews; the route allows 3 × 1s "
        "attempts within a 3s timeout — retries here are wasted"
    ]


def test_one_line_per_situation_with_a_count_most_frequent_first():
    spent = GaveUp(0.5, "", "ratings", timeout=3.0, num_retries=1, attempts_started=2)
    records = [
        record(spent),
        record(RETRYING),
        record(GaveUp(2.3, "", "", timeout=None, num_retries=2, per_try_timeout=1.0)),
        record(None),
        record(GaveUp(1.1, "", "", timeout=None, num_retries=2, per_try_timeout=1.0)),
    ]
    assert lessons(records) == [
        "client gave up after 2.0s; the route allows 3 × 1s attempts — retries here are wasted"
        " (3 requests)",  # the first one's words, however long the others waited
        "client gave up after 0.5s waiting for ratings; the route allows 2 attempts within a 3s"
        " timeout — its retries were already spent",
    ]


def test_the_typed_event_is_read_and_the_notes_are_not():
    assert lessons([record(RETRYING, notes=())]) == [RETRYING.describe()]
    lookalike = "client web gave up after 1.0s waiting for db; the route allows 2 attempts"
    assert lessons([record(None, notes=(lookalike,))]) == []


def _by_notes(records: list[Record]) -> list[str]:
    """What the runner did before: parse the notes back (kept here as the reference)."""
    first: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for r in records:
        for note in r.notes:
            if note.startswith("client") and " gave up " in note:
                key = re.sub(r"after \d+(\.\d+)?s", "after …", note, count=1)
                first.setdefault(key, note)
                counts[key] += 1
    return [f"{first[k]} ({n} requests)" if n > 1 else first[k] for k, n in counts.most_common()]


gave_ups = st.builds(
    GaveUp,
    waited=st.sampled_from([0.04, 0.5, 1.96, 2.0, 12.25]),
    source=st.sampled_from(["", "productpage"]),
    target=st.sampled_from(["", "ratings", "reviews"]),
    timeout=st.sampled_from([None, 0.0, 0.5, 3.0]),
    num_retries=st.sampled_from([None, 0, 2]),
    per_try_timeout=st.sampled_from([None, 0.0, 1.0]),
    attempts_started=st.integers(0, 4),
)


@given(st.lists(st.none() | gave_ups, max_size=12))
def test_the_same_lessons_as_parsing_the_notes_did(events):
    records = [record(g) for g in events]
    assert lessons(records) == _by_notes(records)
