"""Label rows: labels in one row never overlap, and no more rows are used than needed."""

from __future__ import annotations

from chaoskit.report.layout import stagger


def test_apart_labels_share_the_first_row():
    assert stagger([(0, 10), (20, 30), (40, 50)]) == [0, 0, 0]


def test_overlapping_labels_move_down_only_as_far_as_needed():
    # b overlaps a; c overlaps b but starts after a ends, so it returns to the first row
    assert stagger([(0, 10), (5, 15), (12, 20)]) == [0, 1, 0]
    # three labels at one instant take three rows
    assert stagger([(0, 10), (0, 10), (0, 10)]) == [0, 1, 2]


def test_the_gap_is_kept_between_neighbours():
    assert stagger([(0, 10), (12, 20)], gap=4) == [0, 1]
    assert stagger([(0, 10), (14, 20)], gap=4) == [0, 0]


def test_rows_follow_the_position_not_the_input_order():
    assert stagger([(20, 30), (0, 25)]) == [1, 0]
    assert stagger([]) == []
