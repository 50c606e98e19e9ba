"""The shape of a room's event graph: choosing prev_events and depth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

#: A new event names at most this many forward extremities (as Synapse).
MAX_PREV_EVENTS: Final = 10
#: A received event naming more than these is rejected (as Synapse).
MAX_RECEIVED_PREV_EVENTS: Final = 20
MAX_RECEIVED_AUTH_EVENTS: Final = 10
#: The largest depth canonical JSON can carry.
MAX_DEPTH: Final = 2**63 - 1


def select_prev_events(
    extremities: Iterable[tuple[str, int, int]], limit: int = MAX_PREV_EVENTS
) -> list[str]:
    """The prev_events of a new event among ``(event_id, depth, stream_ordering)``:
    the `limit` most recent by depth, then by local arrival."""
    ranked = sorted(extremities, key=lambda x: (x[1], x[2], x[0]), reverse=True)
    return [event_id for event_id, _depth, _stream in ranked[:limit]]


def next_depth(prev_depths: Sequence[int]) -> int:
    """One more than the deepest prev_event (1 for a room's first event)."""
    if not prev_depths:
        return 1
    return min(max(prev_depths) + 1, MAX_DEPTH)


def new_extremities(
    current: Iterable[str], event_id: str, prev_events: Iterable[str], has_children: bool
) -> list[str]:
    """The forward extremities once an accepted event joins the timeline: it
    replaces the prev_events it names, and is one itself unless a stored
    event already names it as a prev_event."""
    prevs = set(prev_events)
    kept = [e for e in current if e not in prevs and e != event_id]
    if not has_children:
        kept.append(event_id)
    return kept
