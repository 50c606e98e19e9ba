"""Events: persisting a new event with its state change, and reading them back."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import orjson

from hamlet.core.events import Event
from hamlet.core.room_versions import get_room_version
from hamlet.storage.database import Database, Row, Transaction
from hamlet.storage.stores.search_index import index_event, unindex_event

StateMap = Mapping[tuple[str, str], str]

# A full state snapshot is written after this many deltas.
SNAPSHOT_EVERY = 50

_EVENT_COLUMNS = (
    "e.stream_ordering, e.event_id, e.json, r.room_version, e.redacted_by, e.state_group,"
    " e.replaces_state"
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    stream_ordering: int
    event: Event
    redacted_by: str | None
    #: The room state after this event.
    state_group: int
    #: For state events, the state event this one replaced.
    replaces_state: str | None = None


@dataclass(frozen=True, slots=True)
class PersistRequest:
    """Everything one new event changes, written in one transaction."""

    event: Event
    stream_ordering: int
    state_group: int
    #: For state events: the group this one extends, and its delta depth.
    prev_state_group: int | None = None
    prev_delta_depth: int = 0
    #: The full state after the event, when a snapshot is due.
    full_state: StateMap | None = None
    txn: tuple[str, str, str] | None = None  # (user_id, device_id, txn_id)
    replaces_state: str | None = None
    room_row: tuple[str, str, str | None] | None = None  # (version, creator, room_type)


def _row_to_event(row: Row) -> StoredEvent:
    stream, event_id, raw, version, redacted_by, group, replaces = row
    pdu = orjson.loads(raw)
    event = Event(pdu, get_room_version(version), event_id=event_id)
    if redacted_by is not None:
        # A redacted event is its redacted form for every reader (state,
        # auth, serving); the original stays in the row.
        event = Event(event.get_redacted_pdu_json(), event.room_version, event_id=event_id)
    return StoredEvent(int(stream), event, redacted_by, int(group), replaces)


def _relation(event: Event) -> tuple[str | None, str | None]:
    rel = event.content.get("m.relates_to")
    if isinstance(rel, Mapping):
        target, rel_type = rel.get("event_id"), rel.get("rel_type")
        if isinstance(target, str) and isinstance(rel_type, str):
            return target, rel_type
    return None, None


class EventsStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.persisted_count = 0  # since start, for /metrics

    async def max_positions(self) -> tuple[int, int]:
        """(max stream_ordering, max state group) for the id generators."""

        async def run(txn: Transaction) -> tuple[int, int]:
            stream = await txn.fetchval("SELECT MAX(stream_ordering) FROM events")
            group = await txn.fetchval("SELECT MAX(group_id) FROM state_groups")
            return int(stream or 0), int(group or 0)

        return await self.db.run_interaction("max_event_positions", run)

    async def persist(self, req: PersistRequest) -> None:
        await self.db.run_interaction("persist_event", lambda txn: self._persist(txn, req))
        self.persisted_count += 1

    async def persist_batch(self, reqs: Sequence[PersistRequest]) -> None:
        """Persist many events in one transaction (bulk imports: one commit, not one each)."""

        async def run(txn: Transaction) -> None:
            for req in reqs:
                await self._persist(txn, req)

        await self.db.run_interaction("persist_event_batch", run)

    async def _persist(self, txn: Transaction, req: PersistRequest) -> None:
        ev = req.event
        relates_to, rel_type = _relation(ev)
        if req.room_row is not None:
            version, creator, room_type = req.room_row
            await txn.execute(
                "INSERT INTO rooms (room_id, room_version, creator, room_type, created_ts)"
                " VALUES (?, ?, ?, ?, ?)",
                (ev.room_id, version, creator, room_type, ev.origin_server_ts),
            )
        url = ev.content.get("url")
        await txn.execute(
            "INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender,"
            " depth, origin_server_ts, state_group, relates_to, rel_type, contains_url,"
            " replaces_state, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                req.stream_ordering,
                ev.event_id,
                ev.room_id,
                ev.type,
                ev.state_key,
                ev.sender,
                ev.depth,
                ev.origin_server_ts,
                req.state_group,
                relates_to,
                rel_type,
                isinstance(url, str),
                req.replaces_state,
                orjson.dumps(ev.get_pdu_json(include_unsigned=False)).decode(),
            ),
        )
        if req.txn is not None:
            await txn.execute(
                "INSERT INTO event_txn_ids (room_id, user_id, device_id, txn_id, event_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (ev.room_id, *req.txn, ev.event_id),
            )
        await index_event(txn, self.db.engine, req.stream_ordering, ev)
        if ev.state_key is not None:
            await self._persist_state(txn, req)
        if ev.type == "m.room.redaction" and ev.redacts is not None:
            await txn.execute(
                "UPDATE events SET redacted_by = ? WHERE event_id = ? AND room_id = ?"
                " AND redacted_by IS NULL",
                (ev.event_id, ev.redacts, ev.room_id),
            )
            await unindex_event(txn, self.db.engine, ev.redacts, ev.room_id)

    async def _persist_state(self, txn: Transaction, req: PersistRequest) -> None:
        ev = req.event
        assert ev.state_key is not None
        if req.full_state is not None:
            await txn.execute(
                "INSERT INTO state_groups (group_id, room_id, prev_group, delta_depth)"
                " VALUES (?, ?, NULL, 0)",
                (req.state_group, ev.room_id),
            )
            await txn.executemany(
                "INSERT INTO state_group_entries (group_id, type, state_key, event_id)"
                " VALUES (?, ?, ?, ?)",
                [(req.state_group, t, k, e) for (t, k), e in req.full_state.items()],
            )
        else:
            await txn.execute(
                "INSERT INTO state_groups (group_id, room_id, prev_group, delta_depth)"
                " VALUES (?, ?, ?, ?)",
                (req.state_group, ev.room_id, req.prev_state_group, req.prev_delta_depth + 1),
            )
            await txn.execute(
                "INSERT INTO state_group_entries (group_id, type, state_key, event_id)"
                " VALUES (?, ?, ?, ?)",
                (req.state_group, ev.type, ev.state_key, ev.event_id),
            )
        await txn.execute(
            "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
            (ev.room_id, ev.type, ev.state_key, ev.event_id),
        )
        if ev.type == "m.room.member":
            membership = ev.content.get("membership")
            await txn.execute(
                "INSERT INTO room_memberships"
                " (room_id, user_id, membership, event_id, stream_ordering, forgotten)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,"
                " event_id = excluded.event_id, stream_ordering = excluded.stream_ordering,"
                " forgotten = excluded.forgotten",
                (
                    ev.room_id,
                    ev.state_key,
                    str(membership),
                    ev.event_id,
                    req.stream_ordering,
                    False,
                ),
            )

    async def get_event_by_txn(
        self, room_id: str, user_id: str, device_id: str, txn_id: str
    ) -> str | None:
        value = await self.db.fetchval(
            "get_event_by_txn",
            "SELECT event_id FROM event_txn_ids"
            " WHERE room_id = ? AND user_id = ? AND device_id = ? AND txn_id = ?",
            room_id,
            user_id,
            device_id,
            txn_id,
        )
        return str(value) if value is not None else None

    async def get_txn_ids(self, event_ids: Collection[str]) -> dict[str, tuple[str, str]]:
        """event_id -> (device_id, txn_id) for events sent with a transaction id."""
        if not event_ids:
            return {}
        ids = list(event_ids)
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(
            "get_txn_ids",
            f"SELECT event_id, device_id, txn_id FROM event_txn_ids WHERE event_id IN ({marks})",
            *ids,
        )
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

    async def get_event(self, event_id: str) -> StoredEvent | None:
        rows = await self.db.fetchall(
            "get_event",
            f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r USING (room_id)"
            " WHERE e.event_id = ?",
            event_id,
        )
        return _row_to_event(rows[0]) if rows else None

    async def get_events(self, event_ids: Collection[str]) -> dict[str, StoredEvent]:
        if not event_ids:
            return {}
        ids = list(event_ids)
        found: dict[str, StoredEvent] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(
                "get_events",
                f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r USING (room_id)"
                f" WHERE e.event_id IN ({marks})",
                *chunk,
            )
            for row in rows:
                stored = _row_to_event(row)
                found[stored.event.event_id] = stored
        return found

    async def get_events_after(self, after: int, upto: int, limit: int) -> list[StoredEvent]:
        """Events with after < stream_ordering <= upto, oldest first, at most `limit`."""
        rows = await self.db.fetchall(
            "get_events_after",
            f"SELECT {_EVENT_COLUMNS} FROM events e JOIN rooms r USING (room_id)"
            " WHERE e.stream_ordering > ? AND e.stream_ordering <= ?"
            " ORDER BY e.stream_ordering LIMIT ?",
            after,
            upto,
            limit,
        )
        return [_row_to_event(row) for row in rows]

    async def get_rooms_changed(self, room_ids: Collection[str], after: int, upto: int) -> set[str]:
        """Which of `room_ids` have events with after < stream_ordering <= upto."""
        if not room_ids or upto <= after:
            return set()
        ids = list(room_ids)
        changed: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(
                "get_rooms_changed",
                f"SELECT DISTINCT room_id FROM events WHERE room_id IN ({marks})"
                " AND stream_ordering > ? AND stream_ordering <= ?",
                *chunk,
                after,
                upto,
            )
            changed.update(str(r[0]) for r in rows)
        return changed

    async def get_state_keys_changed(
        self, room_id: str, after: int, upto: int
    ) -> set[tuple[str, str]]:
        """The (type, state_key) of the room's state events with after < stream_ordering <= upto."""
        rows = await self.db.fetchall(
            "get_state_keys_changed",
            "SELECT DISTINCT type, state_key FROM events WHERE room_id = ?"
            " AND state_key IS NOT NULL AND stream_ordering > ? AND stream_ordering <= ?",
            room_id,
            after,
            upto,
        )
        return {(str(r[0]), str(r[1])) for r in rows}

    async def count_events_between(self, room_id: str, after: int, upto: int) -> int:
        """Events of the room with after < stream_ordering <= upto."""
        return int(
            await self.db.fetchval(
                "count_events_between",
                "SELECT COUNT(*) FROM events WHERE room_id = ?"
                " AND stream_ordering > ? AND stream_ordering <= ?",
                room_id,
                after,
                upto,
            )
            or 0
        )

    async def get_latest_positions(
        self, room_ids: Collection[str], upto: int, types: Collection[str] | None = None
    ) -> dict[str, int]:
        """Per room, the stream ordering of its newest event (of one of `types`,
        if given) at or before `upto`; rooms without one are left out."""
        ids = list(room_ids)
        kinds = list(types) if types is not None else []
        latest: dict[str, int] = {}
        if types is not None and not kinds:
            return latest
        by_type = f" AND type IN ({','.join('?' * len(kinds))})" if kinds else ""
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await self.db.fetchall(
                "get_latest_positions",
                f"SELECT room_id, MAX(stream_ordering) FROM events WHERE room_id IN ({marks})"
                f"{by_type} AND stream_ordering <= ? GROUP BY room_id",
                *chunk,
                *kinds,
                upto,
            )
            latest.update((str(r[0]), int(r[1])) for r in rows)
        return latest

    async def get_read_position(self, room_id: str, user_id: str) -> int:
        """Where the user has read up to: their newest read receipt or own event."""

        async def run(txn: Transaction) -> int:
            receipt = await txn.fetchval(
                "SELECT MAX(e.stream_ordering) FROM receipts r"
                " JOIN events e ON e.event_id = r.event_id"
                " WHERE r.room_id = ? AND r.user_id = ?"
                " AND r.receipt_type IN ('m.read', 'm.read.private')",
                (room_id, user_id),
            )
            own = await txn.fetchval(
                "SELECT MAX(stream_ordering) FROM events WHERE room_id = ? AND sender = ?",
                (room_id, user_id),
            )
            return max(int(receipt or 0), int(own or 0))

        return await self.db.run_interaction("get_read_position", run)

    async def get_latest(self, room_id: str) -> tuple[str, int, int, int] | None:
        """(event_id, depth, stream_ordering, state_group) of the room's newest event."""
        row = await self.db.fetchone(
            "get_latest_event",
            "SELECT event_id, depth, stream_ordering, state_group FROM events"
            " WHERE room_id = ? ORDER BY stream_ordering DESC LIMIT 1",
            room_id,
        )
        if row is None:
            return None
        return str(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def get_state_group_at_stream(self, room_id: str, stream: int) -> int | None:
        """The room state after its last event at or before `stream`."""
        value = await self.db.fetchval(
            "get_state_group_at_stream",
            "SELECT state_group FROM events WHERE room_id = ? AND stream_ordering <= ?"
            " ORDER BY stream_ordering DESC LIMIT 1",
            room_id,
            stream,
        )
        return int(value) if value is not None else None

    async def get_state_group_info(self, group: int) -> tuple[int | None, int]:
        row = await self.db.fetchone(
            "get_state_group_info",
            "SELECT prev_group, delta_depth FROM state_groups WHERE group_id = ?",
            group,
        )
        if row is None:
            return None, 0
        return (int(row[0]) if row[0] is not None else None), int(row[1])

    async def get_state_ids(self, group: int) -> dict[tuple[str, str], str]:
        """The full state of a group: walk deltas back to the nearest snapshot."""

        async def run(txn: Transaction) -> dict[tuple[str, str], str]:
            chain: list[int] = []
            current: int | None = group
            while current is not None:
                chain.append(current)
                row = await txn.fetchone(
                    "SELECT prev_group FROM state_groups WHERE group_id = ?", (current,)
                )
                current = int(row[0]) if row is not None and row[0] is not None else None
            marks = ",".join("?" * len(chain))
            rows = await txn.fetchall(
                "SELECT group_id, type, state_key, event_id FROM state_group_entries"
                f" WHERE group_id IN ({marks})",
                chain,
            )
            depth = {g: i for i, g in enumerate(chain)}
            # Later groups (smaller index in chain) override earlier ones.
            rows.sort(key=lambda r: -depth[int(r[0])])
            return {(str(r[1]), str(r[2])): str(r[3]) for r in rows}

        return await self.db.run_interaction("get_state_ids", run)
