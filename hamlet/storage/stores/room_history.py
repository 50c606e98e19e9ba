"""Reading a room's timeline for clients: filtered pages, relations and their aggregations."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hamlet.core.filters import RoomEventFilter
from hamlet.storage.database import Database
from hamlet.storage.stores.events import _EVENT_COLUMNS, StoredEvent, _row_to_event

_FROM = "FROM events e JOIN rooms r USING (room_id)"
# IN lists are split into chunks of this many ids.
_CHUNK = 500
# Per-room SELECTs joined in one statement (SQLite allows 500 at most).
_ROOMS_PER_STATEMENT = 100
# A relation counts only in its parent's room: anyone can send an event in
# a room of their own that names an event of any other room as its parent,
# and it must not show up (or be counted) where the parent is read.
_SAME_ROOM = "e.room_id = (SELECT p.room_id FROM events p WHERE p.event_id = e.relates_to)"


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    count: int
    latest_stream: int


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _chunks(ids: Sequence[str], size: int = _CHUNK) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def _filter_clauses(f: RoomEventFilter | None) -> tuple[list[str], list[Any]]:
    """The parts of a filter SQL can apply; the caller still applies the whole filter."""
    if f is None:
        return [], []
    clauses: list[str] = []
    args: list[Any] = []
    if f.types is not None:
        if not f.types:
            clauses.append("1 = 0")
        elif not any("*" in t for t in f.types):
            clauses.append(f"e.type IN ({_marks(len(f.types))})")
            args.extend(f.types)
    exact_not = [t for t in f.not_types if "*" not in t]
    if exact_not:
        clauses.append(f"e.type NOT IN ({_marks(len(exact_not))})")
        args.extend(exact_not)
    if f.senders is not None:
        if not f.senders:
            clauses.append("1 = 0")
        else:
            clauses.append(f"e.sender IN ({_marks(len(f.senders))})")
            args.extend(f.senders)
    if f.not_senders:
        clauses.append(f"e.sender NOT IN ({_marks(len(f.not_senders))})")
        args.extend(f.not_senders)
    if f.contains_url is not None:
        clauses.append("e.contains_url = ?")
        args.append(f.contains_url)
    return clauses, args


class RoomHistoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _page(
        self,
        desc: str,
        clauses: list[str],
        args: list[Any],
        after: int | None,
        before: int | None,
        backwards: bool,
        limit: int,
    ) -> list[StoredEvent]:
        """Events matching `clauses` with after < stream_ordering <= before, in order."""
        if after is not None:
            clauses.append("e.stream_ordering > ?")
            args.append(after)
        if before is not None:
            clauses.append("e.stream_ordering <= ?")
            args.append(before)
        order = "DESC" if backwards else "ASC"
        rows = await self.db.fetchall(
            desc,
            f"SELECT {_EVENT_COLUMNS} {_FROM} WHERE {' AND '.join(clauses)}"
            f" ORDER BY e.stream_ordering {order} LIMIT ?",
            *args,
            limit,
        )
        return [_row_to_event(r) for r in rows]

    async def get_room_events(
        self,
        room_id: str,
        *,
        after: int | None,
        before: int | None,
        limit: int,
        backwards: bool,
        event_filter: RoomEventFilter | None = None,
    ) -> list[StoredEvent]:
        """Events with after < stream_ordering <= before, narrowed by what SQL can filter."""
        clauses = ["e.room_id = ?"]
        args: list[Any] = [room_id]
        more, more_args = _filter_clauses(event_filter)
        clauses.extend(more)
        args.extend(more_args)
        return await self._page(
            "history_room_events", clauses, args, after, before, backwards, limit
        )

    async def get_newest_room_events(
        self,
        room_ids: Sequence[str],
        *,
        before: int,
        limit: int,
        event_filter: RoomEventFilter | None = None,
        after: Mapping[str, int] | None = None,
    ) -> dict[str, list[StoredEvent]]:
        """Of each room, its newest `limit` events at or before `before` (and
        after `after[room]` when given), newest first, narrowed by what SQL
        can filter: one statement per chunk of rooms, each room read through
        its own index range (a window over all rooms' events would read
        whole histories)."""
        more, more_args = _filter_clauses(event_filter)
        where = " AND ".join(
            ["e.room_id = ?", *more, "e.stream_ordering > ?", "e.stream_ordering <= ?"]
        )
        one = (
            f"SELECT * FROM (SELECT {_EVENT_COLUMNS} {_FROM} WHERE {where}"
            " ORDER BY e.stream_ordering DESC LIMIT ?) AS newest"
        )
        out: dict[str, list[StoredEvent]] = {room_id: [] for room_id in room_ids}
        for chunk in _chunks(room_ids, _ROOMS_PER_STATEMENT):
            args: list[Any] = []
            for room_id in chunk:
                floor = after.get(room_id, -1) if after is not None else -1
                args.extend([room_id, *more_args, floor, before, limit])
            rows = await self.db.fetchall(
                "history_newest_room_events", " UNION ALL ".join([one] * len(chunk)), *args
            )
            for row in rows:
                stored = _row_to_event(row)
                out[stored.event.room_id].append(stored)
        return out

    async def get_relations(
        self,
        parent_ids: Collection[str],
        *,
        rel_type: str | None,
        event_type: str | None,
        after: int | None,
        before: int | None,
        limit: int,
        backwards: bool,
    ) -> list[StoredEvent]:
        """Unredacted events relating to any of `parent_ids`, one page of them."""
        parents = list(parent_ids)
        clauses = [
            f"e.relates_to IN ({_marks(len(parents))})",
            "e.redacted_by IS NULL",
            _SAME_ROOM,
        ]
        args: list[Any] = list(parents)
        if rel_type is not None:
            clauses.append("e.rel_type = ?")
            args.append(rel_type)
        if event_type is not None:
            clauses.append("e.type = ?")
            args.append(event_type)
        return await self._page("get_relations", clauses, args, after, before, backwards, limit)

    async def get_child_ids(self, parent_ids: Collection[str], rel_type: str | None) -> set[str]:
        """Ids of unredacted events relating directly to any of `parent_ids`."""
        found: set[str] = set()
        for chunk in _chunks(list(parent_ids)):
            sql = (
                "SELECT e.event_id FROM events e WHERE e.relates_to IN"
                f" ({_marks(len(chunk))}) AND e.redacted_by IS NULL AND {_SAME_ROOM}"
            )
            args: list[Any] = list(chunk)
            if rel_type is not None:
                sql += " AND e.rel_type = ?"
                args.append(rel_type)
            rows = await self.db.fetchall("get_relation_child_ids", sql, *args)
            found.update(str(r[0]) for r in rows)
        return found

    # Bundled aggregations: one query per kind for a whole batch of parents.

    async def get_relation_kinds(self, parent_ids: Sequence[str]) -> dict[str, set[str]]:
        """parent -> the rel_types of its unredacted relations (only parents that have any)."""
        out: dict[str, set[str]] = {}
        for chunk in _chunks(parent_ids):
            rows = await self.db.fetchall(
                "get_relation_kinds",
                "SELECT DISTINCT e.relates_to, e.rel_type FROM events e"
                f" WHERE e.relates_to IN ({_marks(len(chunk))}) AND e.redacted_by IS NULL"
                f" AND {_SAME_ROOM}",
                *chunk,
            )
            for r in rows:
                out.setdefault(str(r[0]), set()).add(str(r[1]))
        return out

    async def get_related_events(
        self, parent_ids: Sequence[str], rel_type: str
    ) -> list[StoredEvent]:
        """Every unredacted event with `rel_type` relating to one of `parent_ids`."""
        out: list[StoredEvent] = []
        for chunk in _chunks(parent_ids):
            rows = await self.db.fetchall(
                "get_related_events",
                f"SELECT {_EVENT_COLUMNS} {_FROM} WHERE e.relates_to IN ({_marks(len(chunk))})"
                f" AND e.rel_type = ? AND e.redacted_by IS NULL AND {_SAME_ROOM}"
                " ORDER BY e.stream_ordering",
                *chunk,
                rel_type,
            )
            out.extend(_row_to_event(r) for r in rows)
        return out

    async def get_related_ids(
        self, parent_ids: Sequence[str], rel_type: str
    ) -> list[tuple[str, str]]:
        """(parent, event_id) of unredacted `rel_type` relations, oldest first."""
        out: list[tuple[str, str]] = []
        for chunk in _chunks(parent_ids):
            rows = await self.db.fetchall(
                "get_related_ids",
                f"SELECT e.relates_to, e.event_id FROM events e WHERE e.relates_to IN"
                f" ({_marks(len(chunk))}) AND e.rel_type = ? AND e.redacted_by IS NULL"
                f" AND {_SAME_ROOM} ORDER BY e.stream_ordering",
                *chunk,
                rel_type,
            )
            out.extend((str(r[0]), str(r[1])) for r in rows)
        return out

    async def get_thread_summaries(self, root_ids: Sequence[str]) -> dict[str, ThreadSummary]:
        out: dict[str, ThreadSummary] = {}
        for chunk in _chunks(root_ids):
            rows = await self.db.fetchall(
                "get_thread_summaries",
                "SELECT e.relates_to, COUNT(*), MAX(e.stream_ordering) FROM events e"
                f" WHERE e.relates_to IN ({_marks(len(chunk))}) AND e.rel_type = ?"
                f" AND e.redacted_by IS NULL AND {_SAME_ROOM} GROUP BY e.relates_to",
                *chunk,
                "m.thread",
            )
            for r in rows:
                out[str(r[0])] = ThreadSummary(int(r[1]), int(r[2]))
        return out

    async def get_threads_participated(self, root_ids: Sequence[str], user_id: str) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(root_ids):
            rows = await self.db.fetchall(
                "get_threads_participated",
                "SELECT DISTINCT e.relates_to FROM events e"
                f" WHERE e.relates_to IN ({_marks(len(chunk))}) AND e.rel_type = ?"
                f" AND e.sender = ? AND e.redacted_by IS NULL AND {_SAME_ROOM}",
                *chunk,
                "m.thread",
                user_id,
            )
            found.update(str(r[0]) for r in rows)
        return found

    async def get_events_by_stream(self, positions: Collection[int]) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        items = sorted(positions)
        for i in range(0, len(items), _CHUNK):
            chunk = items[i : i + _CHUNK]
            rows = await self.db.fetchall(
                "get_events_by_stream",
                f"SELECT {_EVENT_COLUMNS} {_FROM}"
                f" WHERE e.stream_ordering IN ({_marks(len(chunk))})",
                *chunk,
            )
            out.extend(_row_to_event(r) for r in rows)
        return out

    # Threads list and jump-to-date.

    async def get_thread_roots(
        self, room_id: str, *, before: int | None, upto: int | None, limit: int
    ) -> list[tuple[str, int]]:
        """(root event_id, latest reply position), most recently active thread first.

        Only threads whose latest unredacted reply at or before `upto` is at
        or before `before` are listed (`upto` hides replies the user cannot
        see at all, e.g. after they left).
        """
        clauses = ["e.room_id = ?", "e.rel_type = ?", "e.redacted_by IS NULL", _SAME_ROOM]
        args: list[Any] = [room_id, "m.thread"]
        if upto is not None:
            clauses.append("e.stream_ordering <= ?")
            args.append(upto)
        having = ""
        if before is not None:
            having = " HAVING MAX(e.stream_ordering) <= ?"
            args.append(before)
        rows = await self.db.fetchall(
            "get_thread_roots",
            f"SELECT e.relates_to, MAX(e.stream_ordering) FROM events e"
            f" WHERE {' AND '.join(clauses)}"
            f" GROUP BY e.relates_to{having} ORDER BY MAX(e.stream_ordering) DESC LIMIT ?",
            *args,
            limit,
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def get_events_by_timestamp(
        self,
        room_id: str,
        ts: int,
        *,
        forwards: bool,
        after: tuple[int, int] | None,
        upto: int | None,
        limit: int,
    ) -> list[StoredEvent]:
        """Events at/after (forwards) or at/before `ts`, nearest first.

        Ordered by (origin_server_ts, stream_ordering), ascending forwards and
        descending backwards; `after` is the (ts, stream) of the last event
        of the previous batch, to continue past it.
        """
        op, order = (">", "ASC") if forwards else ("<", "DESC")
        clauses = ["e.room_id = ?", f"e.origin_server_ts {op}= ?"]
        args: list[Any] = [room_id, ts]
        if after is not None:
            clauses.append(
                f"(e.origin_server_ts {op} ?"
                f" OR (e.origin_server_ts = ? AND e.stream_ordering {op} ?))"
            )
            args.extend([after[0], after[0], after[1]])
        if upto is not None:
            clauses.append("e.stream_ordering <= ?")
            args.append(upto)
        rows = await self.db.fetchall(
            "get_events_by_timestamp",
            f"SELECT {_EVENT_COLUMNS} {_FROM} WHERE {' AND '.join(clauses)}"
            f" ORDER BY e.origin_server_ts {order}, e.stream_ordering {order} LIMIT ?",
            *args,
            limit,
        )
        return [_row_to_event(r) for r in rows]
