"""Unread counts of a joined room, carried forward from the user's last sync.

Counting reads the user's read position and up to `UNREAD_LIMIT` events
after it, and matches each against their push rules: two queries and much
of a woken sync's CPU. An entry keeps the last answer, which holds while no
receipt moved for the user or room and their push rules (account data) did
not change; a sync whose timeline holds every event since then adds those
events' counts (or starts again after the user's own newest event) without
asking the store. Anything else (a redaction among them, a change of the
member count, past `UNREAD_LIMIT` events) counts afresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hamlet.core.glob import WorkBudget
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.push.rules import UNREAD_LIMIT, PushRulesHandler, context_keys
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.events import EventsStore, StoredEvent
from hamlet.storage.stores.room_history import RoomHistoryStore

MAX_ENTRIES = 10_000
REDACTION = "m.room.redaction"


@dataclass(frozen=True, slots=True)
class _Entry:
    #: Stream positions read before the answer: it holds while neither moved.
    receipts_as_of: int
    rules_as_of: int
    member_count: int
    read_pos: int
    #: Events position counted up to, and how many events were counted.
    upto: int
    events: int
    counts: tuple[int, int]


class UnreadTracker:
    def __init__(
        self,
        *,
        events: EventsStore,
        history: RoomHistoryStore,
        push_rules: PushRulesHandler,
        state: StateHandler,
        notifier: Notifier,
    ) -> None:
        self._state = state
        self._events = events
        self._history = history
        self._push_rules = push_rules
        self._notifier = notifier
        self._entries: LruCache[tuple[str, str], _Entry] = LruCache(MAX_ENTRIES)

    async def counts(
        self,
        user_id: str,
        room_id: str,
        *,
        upto: int,
        member_count: int,
        budget: WorkBudget,
        seen_after: int | None = None,
        seen: Sequence[StoredEvent] = (),
    ) -> tuple[int, int]:
        """(notification_count, highlight_count) up to `upto`. `seen`: every
        event of the room in (`seen_after`, `upto`], oldest first, when the
        sync's timeline holds them all (`seen_after` None: it does not)."""
        key = (room_id, user_id)
        entry = self._entries.get(key)
        if (
            entry is not None
            and seen_after is not None
            and seen_after <= entry.upto <= upto
            and member_count == entry.member_count
            and self._holds(entry, user_id, room_id)
        ):
            fresh = [s for s in seen if s.stream_ordering > entry.upto]
            carried = await self._carry(entry, user_id, room_id, upto, budget, fresh)
            if carried is not None:
                self._entries.set(key, carried)
                return carried.counts
        notifier = self._notifier
        receipts_as_of = notifier.stream_position("receipts")
        rules_as_of = notifier.stream_position("account_data")
        read_pos = await self._events.get_read_position(room_id, user_id)
        events: Sequence[StoredEvent] = []
        if upto > read_pos:
            events = await self._history.get_room_events(
                room_id, after=read_pos, before=upto, limit=UNREAD_LIMIT, backwards=True
            )
        counts = await self._push_rules.count_unread(user_id, room_id, events, member_count, budget)
        if budget.remaining > 0:
            self._entries.set(
                key,
                _Entry(
                    receipts_as_of,
                    rules_as_of,
                    member_count,
                    read_pos,
                    upto,
                    len(events),
                    counts,
                ),
            )
        return counts

    async def counts_of_rooms(
        self,
        user_id: str,
        member_counts: Mapping[str, int],
        *,
        upto: int,
        budget: WorkBudget,
    ) -> dict[str, tuple[int, int]]:
        """`counts` afresh of each room of `member_counts` (joined, with their
        joined member counts), each step read for all rooms at once; each
        answer is kept for the next sync to carry forward, as `counts` does."""
        room_ids = list(member_counts)
        notifier = self._notifier
        receipts_as_of = notifier.stream_position("receipts")
        rules_as_of = notifier.stream_position("account_data")
        read_positions = await self._events.get_read_positions(room_ids, user_id)
        unread = await self._history.get_newest_room_events(
            room_ids, before=upto, limit=UNREAD_LIMIT, after=read_positions
        )
        contexts = await self._state.get_current_states(
            [r for r in room_ids if any(s.event.sender != user_id for s in unread[r])],
            context_keys(user_id),
        )
        out: dict[str, tuple[int, int]] = {}
        for room_id in room_ids:
            member_count, events = member_counts[room_id], unread[room_id]
            counts = await self._push_rules.count_unread(
                user_id, room_id, events, member_count, budget, contexts.get(room_id)
            )
            out[room_id] = counts
            if budget.remaining > 0:
                entry = _Entry(
                    receipts_as_of,
                    rules_as_of,
                    member_count,
                    read_positions[room_id],
                    upto,
                    len(events),
                    counts,
                )
                self._entries.set((room_id, user_id), entry)
        return out

    def _holds(self, entry: _Entry, user_id: str, room_id: str) -> bool:
        notifier = self._notifier
        return not (
            notifier.moved_since(
                "receipts", entry.receipts_as_of, users=(user_id,), rooms=(room_id,)
            )
            or notifier.moved_since("account_data", entry.rules_as_of, users=(user_id,))
        )

    async def _carry(
        self,
        entry: _Entry,
        user_id: str,
        room_id: str,
        upto: int,
        budget: WorkBudget,
        fresh: Sequence[StoredEvent],
    ) -> _Entry | None:
        """The entry moved on over `fresh`, the events after it; None to count afresh."""
        if any(s.event.type == REDACTION for s in fresh):
            return None
        own = max((s.stream_ordering for s in fresh if s.event.sender == user_id), default=0)
        if own > entry.read_pos:
            # The user's own event is their read position: counting starts after it.
            read_pos, base, before = own, (0, 0), 0
        else:
            read_pos, base, before = entry.read_pos, entry.counts, entry.events
        counted = [s for s in fresh if s.stream_ordering > read_pos]
        total = before + len(counted)
        if total > UNREAD_LIMIT:
            return None
        added = await self._push_rules.count_unread(
            user_id, room_id, counted, entry.member_count, budget
        )
        if budget.remaining <= 0:
            return None
        return _Entry(
            entry.receipts_as_of,
            entry.rules_as_of,
            entry.member_count,
            read_pos,
            upto,
            total,
            (base[0] + added[0], base[1] + added[1]),
        )
