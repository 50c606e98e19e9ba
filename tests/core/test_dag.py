"""Choosing prev_events and depth, and moving forward extremities."""

from __future__ import annotations

from hamlet.core.dag import (
    MAX_DEPTH,
    MAX_PREV_EVENTS,
    new_extremities,
    next_depth,
    select_prev_events,
)


def test_all_extremities_are_prev_events_up_to_the_cap() -> None:
    few = [("$a", 3, 10), ("$b", 4, 11)]
    assert set(select_prev_events(few)) == {"$a", "$b"}
    many = [(f"${n}", 5, n) for n in range(MAX_PREV_EVENTS + 5)]
    chosen = select_prev_events(many)
    assert len(chosen) == MAX_PREV_EVENTS
    # Equal depths: the most recently arrived are kept.
    assert set(chosen) == {f"${n}" for n in range(5, MAX_PREV_EVENTS + 5)}


def test_deepest_extremities_win_over_recent_arrivals() -> None:
    extremities = [("$deep", 100, 1), *((f"${n}", 2, 10 + n) for n in range(MAX_PREV_EVENTS))]
    chosen = select_prev_events(extremities)
    assert "$deep" in chosen
    assert "$0" not in chosen  # the shallowest, earliest arrival goes
    assert select_prev_events([]) == []


def test_depth_is_one_more_than_the_deepest_prev_and_capped() -> None:
    assert next_depth([]) == 1
    assert next_depth([3, 7, 5]) == 8
    assert next_depth([MAX_DEPTH]) == MAX_DEPTH


def test_an_event_replaces_the_extremities_it_names() -> None:
    assert new_extremities(["$a", "$b", "$c"], "$d", ["$a", "$b"], False) == ["$c", "$d"]
    # An event already named by a stored child is no extremity itself.
    assert new_extremities(["$a"], "$d", ["$x"], True) == ["$a"]
    # Naming an unknown prev leaves the known extremities in place.
    assert new_extremities(["$a"], "$d", ["$gap"], False) == ["$a", "$d"]
