"""Where a page of a stream ends within a byte budget."""

from __future__ import annotations

from hamlet.storage.byte_budget import last_within


def test_everything_fits() -> None:
    assert last_within([(1, 10), (4, 10)], 20) is None
    assert last_within([], 20) is None


def test_cut_after_the_last_row_within_the_budget() -> None:
    assert last_within([(1, 10), (4, 10), (9, 1)], 19) == 1
    assert last_within([(1, 10), (4, 10), (9, 1)], 20) == 4


def test_the_first_row_always_goes() -> None:
    assert last_within([(3, 500), (5, 1)], 100) == 3
    assert last_within([(3, 500)], 100) is None
