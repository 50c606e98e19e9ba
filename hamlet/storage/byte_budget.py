"""Pages of a stream within a byte budget, decided before the rows are loaded.

A sync carries at most so many bytes of a stream (account data, to-device):
reading every pending row only to drop most of them costs the server the
whole backlog on each sync. Stores read `(stream_id, size)` first (the
`size` column its writer filled in: LENGTH(content) would read every value
too), cut there, and load only the rows up to the cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def last_within(sizes: Sequence[Sequence[Any]], max_size: int) -> int | None:
    """Of `(stream_id, size)` rows in stream order, the stream id of the last
    one within `max_size` in total (the first counts as within, so a client
    always moves on), or None when they all fit."""
    total = 0
    for i, (_, size) in enumerate(sizes):
        total += int(size)
        if i and total > max_size:
            return int(sizes[i - 1][0])
    return None
