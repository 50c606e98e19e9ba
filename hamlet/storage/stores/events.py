"""Events: persisting a new event with its state change, and reading them back."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import orjson

from hamlet.core.events import Event
from hamlet.core.room_versions import get_room_version
from hamlet.storage.database import Database, Row, Transaction
from hamlet.storage.stores.search_index import index_event, unindex_event

StateMap = Mapping[tuple[str, str], str]

_UPSERT_MEMBERSHIP = (
    "INSERT INTO room_memberships"
    " (room_id, user_id, membership, event_id, stream_ordering, forgotten)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (room_id, user_id) DO UPDATE SET membership = excluded.membership,"
    " event_id = excluded.event_id, stream_ordering = excluded.stream_ordering,"
    " forgotten = excluded.forgotten"
)

# A full state snapshot is written after this many deltas.
SNAPSHOT_EVERY = 50

_EVENT_COLUMNS = (
    "e.stream_ordering, e.event_id, e.json, r.room_version, e.redacted_by, e.state_group,"
    " e.replaces_state"
)
# The same from `dag_events`, which also holds events outside the timeline,
# among them out-of-band memberships, whose room has no `rooms` row (their
# version is kept with them).
_DAG_VERSION = "COALESCE(r.room_version, o.room_version)"
_DAG_COLUMNS = (
    f"e.stream_ordering, e.event_id, e.json, {_DAG_VERSION}, e.redacted_by, e.state_group,"
    " e.replaces_state, e.outlier, e.soft_failed, e.rejected_reason"
)
_DAG_FROM = (
    "FROM dag_events e LEFT JOIN rooms r USING (room_id)"
    " LEFT JOIN out_of_band_memberships o ON o.event_id = e.event_id"
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    stream_ordering: int
    event: Event
    redacted_by: str | None
    #: The room state after this event; None for an outlier (stored without
    #: state), the state before it for a rejected event.
    state_group: int | None
    #: For state events, the state event this one replaced.
    replaces_state: str | None = None
    outlier: bool = False
    soft_failed: bool = False
    rejected_reason: str | None = None

    @property
    def in_timeline(self) -> bool:
        """Whether clients are served this event (in /sync, /messages, by ID)."""
        return not (self.outlier or self.soft_failed or self.rejected_reason is not None)


@dataclass(frozen=True, slots=True)
class NewStateGroup:
    """A state group to write: a delta against `prev_group`, or a full snapshot."""

    group_id: int
    prev_group: int | None
    delta_depth: int
    entries: StateMap


@dataclass(frozen=True, slots=True)
class CurrentStateDelta:
    """How the room's current state (and so its memberships) changes."""

    to_set: StateMap
    to_delete: Collection[tuple[str, str]] = ()
    #: For each member key in `to_set`: the user's membership in that event.
    memberships: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutOfBandMembership:
    """A local user's membership of a room we are not in: listed with their
    rooms, shown with the stripped state the room's server answered."""

    stripped_state: Sequence[Mapping[str, object]]


@dataclass(frozen=True, slots=True)
class Extremity:
    event_id: str
    depth: int
    stream_ordering: int
    state_group: int


@dataclass(frozen=True, slots=True)
class PersistRequest:
    """Everything one new event changes, written in one transaction."""

    event: Event
    stream_ordering: int
    #: See `StoredEvent.state_group`.
    state_group: int | None
    #: State groups to write first (the resolved state before the event,
    #: the state after it), in order.
    new_groups: Sequence[NewStateGroup] = ()
    txn: tuple[str, str, str] | None = None  # (user_id, device_id, txn_id)
    replaces_state: str | None = None
    room_row: tuple[str, str, str | None] | None = None  # (version, creator, room_type)
    outlier: bool = False
    soft_failed: bool = False
    rejected_reason: str | None = None
    #: How the room's forward extremities change: (no longer, newly).
    extremities: tuple[Collection[str], Collection[str]] | None = None
    #: The event may be stored already as an outlier, which it replaces.
    replaces_outlier: bool = False
    current_state: CurrentStateDelta | None = None
    #: Whether a redaction takes effect (marks the event it redacts).
    apply_redaction: bool = False
    #: A redaction kept by the event it names (for an event that comes
    #: later): whether its sender had the redact power level.
    redaction_power: bool | None = None
    #: A redaction stored earlier that applies to this event.
    redacted_by: str | None = None
    out_of_band: OutOfBandMembership | None = None


def _row_to_event(row: Row) -> StoredEvent:
    stream, event_id, raw, version, redacted_by, group, replaces = row[:7]
    event = Event.adopt(orjson.loads(raw), get_room_version(version), event_id=event_id)
    if redacted_by is not None:
        # A redacted event is its redacted form for every reader (state,
        # auth, serving); the original stays in the row.
        event = Event(event.get_redacted_pdu_json(), event.room_version, event_id=event_id)
    flags = (bool(row[7]), bool(row[8]), row[9]) if len(row) > 7 else (False, False, None)
    return StoredEvent(
        int(stream),
        event,
        redacted_by,
        int(group) if group is not None else None,
        replaces,
        outlier=flags[0],
        soft_failed=flags[1],
        rejected_reason=flags[2],
    )


def _relation(event: Event) -> tuple[str | None, str | None]:
    rel = event.content.get("m.relates_to")
    if isinstance(rel, Mapping):
        target, rel_type = rel.get("event_id"), rel.get("rel_type")
        if isinstance(target, str) and isinstance(rel_type, str):
            return target, rel_type
    return None, None


T = TypeVar("T")


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _chunks(ids: Collection[T]) -> list[list[T]]:
    items = list(ids)
    return [items[i : i + 500] for i in range(0, len(items), 500)]


class EventsStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.persisted_count = 0  # since start, for /metrics

    async def max_positions(self) -> tuple[int, int]:
        """(max stream_ordering, max state group) for the id generators."""

        # One statement: read on every wake, where each round trip counts.
        row = await self.db.fetchone(
            "max_event_positions",
            "SELECT (SELECT MAX(stream_ordering) FROM dag_events),"
            " (SELECT MAX(group_id) FROM state_groups)",
        )
        stream, group = row if row is not None else (None, None)
        return int(stream or 0), int(group or 0)

    async def persist(self, req: PersistRequest) -> None:
        await self.db.run_interaction("persist_event", lambda txn: self._persist(txn, req))
        self.persisted_count += 1

    async def persist_batch(self, reqs: Sequence[PersistRequest]) -> None:
        """Persist many events in one transaction (bulk imports: one commit, not one each)."""

        async def run(txn: Transaction) -> None:
            for req in reqs:
                await self._persist(txn, req)

        await self.db.run_interaction("persist_event_batch", run)

    async def persist_outliers(self, reqs: Sequence[PersistRequest]) -> None:
        """Persist new outliers (no state, not in the timeline) of one room in
        one transaction, a statement per table (a join's state and auth chain)."""
        assert all(r.outlier and not r.new_groups and r.txn is None for r in reqs)

        async def run(txn: Transaction) -> None:
            for req in reqs:
                if req.room_row is not None:
                    await self._insert_room(txn, req.event, req.room_row)
            await self._insert_events(txn, reqs)

        await self.db.run_interaction("persist_outliers", run)
        self.persisted_count += len(reqs)

    async def _insert_room(
        self, txn: Transaction, ev: Event, room_row: tuple[str, str, str | None]
    ) -> None:
        version, creator, room_type = room_row
        await txn.execute(
            "INSERT INTO rooms (room_id, room_version, creator, room_type, created_ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (ev.room_id, version, creator, room_type, ev.origin_server_ts),
        )

    async def _insert_events(self, txn: Transaction, reqs: Sequence[PersistRequest]) -> None:
        """The rows of `dag_events`, `event_edges` and `event_auth` of each event."""
        rows = []
        for req in reqs:
            ev = req.event
            relates_to, rel_type = _relation(ev)
            rows.append(
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
                    isinstance(ev.content.get("url"), str),
                    req.replaces_state,
                    orjson.dumps(ev.get_pdu_json(include_unsigned=False)).decode(),
                    req.outlier,
                    req.soft_failed,
                    req.rejected_reason,
                )
            )
        await txn.executemany(
            "INSERT INTO dag_events (stream_ordering, event_id, room_id, type, state_key, sender,"
            " depth, origin_server_ts, state_group, relates_to, rel_type, contains_url,"
            " replaces_state, json, outlier, soft_failed, rejected_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        await txn.executemany(
            "INSERT INTO event_edges (event_id, prev_event_id, room_id) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [
                (r.event.event_id, prev, r.event.room_id)
                for r in reqs
                for prev in dict.fromkeys(r.event.prev_events)
            ],
        )
        await txn.executemany(
            "INSERT INTO event_auth (event_id, auth_id, room_id) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            [
                (r.event.event_id, auth, r.event.room_id)
                for r in reqs
                for auth in dict.fromkeys(r.event.auth_events)
            ],
        )

    async def _persist(self, txn: Transaction, req: PersistRequest) -> None:
        ev = req.event
        if req.room_row is not None:
            await self._insert_room(txn, ev, req.room_row)
        for group in req.new_groups:
            await self._write_group(txn, ev.room_id, group)
        if req.replaces_outlier:
            # An outlier that now joins the timeline is stored afresh, at its
            # new place in the stream.
            await txn.execute(
                "DELETE FROM dag_events WHERE event_id = ? AND outlier", (ev.event_id,)
            )
        await self._insert_events(txn, [req])
        if req.txn is not None:
            await txn.execute(
                "INSERT INTO event_txn_ids (room_id, user_id, device_id, txn_id, event_id)"
                " VALUES (?, ?, ?, ?, ?)",
                (ev.room_id, *req.txn, ev.event_id),
            )
        if not (req.outlier or req.soft_failed or req.rejected_reason is not None):
            # Only what clients are served can be found.
            await index_event(txn, self.db.engine, req.stream_ordering, ev)
        if req.extremities is not None:
            gone, added = req.extremities
            await txn.executemany(
                "DELETE FROM event_forward_extremities WHERE room_id = ? AND event_id = ?",
                [(ev.room_id, event_id) for event_id in gone],
            )
            await txn.executemany(
                "INSERT INTO event_forward_extremities (room_id, event_id) VALUES (?, ?)",
                [(ev.room_id, event_id) for event_id in added],
            )
        if req.current_state is not None:
            await self._write_current_state(txn, ev.room_id, req.stream_ordering, req.current_state)
        if req.out_of_band is not None:
            await self._write_out_of_band(txn, req.stream_ordering, ev, req.out_of_band)
        if req.apply_redaction and ev.redacts is not None:
            await txn.execute(
                "UPDATE dag_events SET redacted_by = ? WHERE event_id = ? AND room_id = ?"
                " AND redacted_by IS NULL",
                (ev.event_id, ev.redacts, ev.room_id),
            )
            await unindex_event(txn, self.db.engine, ev.redacts, ev.room_id)
        if req.redaction_power is not None and ev.redacts is not None:
            await txn.execute(
                "INSERT INTO redactions (event_id, redacts, room_id, sender, sender_may_redact)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                (ev.event_id, ev.redacts, ev.room_id, ev.sender, req.redaction_power),
            )
        if req.redacted_by is not None:
            await txn.execute(
                "UPDATE dag_events SET redacted_by = ? WHERE event_id = ?",
                (req.redacted_by, ev.event_id),
            )
            await unindex_event(txn, self.db.engine, ev.event_id, ev.room_id)

    async def _write_group(self, txn: Transaction, room_id: str, group: NewStateGroup) -> None:
        await txn.execute(
            "INSERT INTO state_groups (group_id, room_id, prev_group, delta_depth)"
            " VALUES (?, ?, ?, ?)",
            (group.group_id, room_id, group.prev_group, group.delta_depth),
        )
        await txn.executemany(
            "INSERT INTO state_group_entries (group_id, type, state_key, event_id)"
            " VALUES (?, ?, ?, ?)",
            [(group.group_id, t, k, e) for (t, k), e in group.entries.items()],
        )

    async def _write_out_of_band(
        self, txn: Transaction, stream: int, ev: Event, oob: OutOfBandMembership
    ) -> None:
        await txn.execute(
            "INSERT INTO out_of_band_memberships"
            " (event_id, room_id, user_id, room_version, stripped_state) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (
                ev.event_id,
                ev.room_id,
                ev.state_key,
                ev.room_version.identifier,
                orjson.dumps(list(oob.stripped_state)).decode(),
            ),
        )
        await txn.execute(
            _UPSERT_MEMBERSHIP,
            (ev.room_id, ev.state_key, ev.membership, ev.event_id, stream, False),
        )

    async def _write_current_state(
        self, txn: Transaction, room_id: str, stream: int, delta: CurrentStateDelta
    ) -> None:
        for event_type, state_key in delta.to_delete:
            await txn.execute(
                "DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?",
                (room_id, event_type, state_key),
            )
            if event_type == "m.room.member":
                await txn.execute(
                    "DELETE FROM room_memberships WHERE room_id = ? AND user_id = ?",
                    (room_id, state_key),
                )
        await txn.executemany(
            "INSERT INTO current_state (room_id, type, state_key, event_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id",
            [(room_id, t, k, e) for (t, k), e in delta.to_set.items()],
        )
        await txn.executemany(
            _UPSERT_MEMBERSHIP,
            [
                (
                    room_id,
                    user_id,
                    membership,
                    delta.to_set[("m.room.member", user_id)],
                    stream,
                    False,
                )
                for user_id, membership in delta.memberships.items()
            ],
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
        """Any stored event but a rejected one (see `StoredEvent.in_timeline`)."""
        found = await self.get_events([event_id])
        return found.get(event_id)

    async def get_events(
        self, event_ids: Collection[str], *, include_rejected: bool = False
    ) -> dict[str, StoredEvent]:
        """Stored events by ID, outliers and soft-failed ones too (state may
        name them); rejected ones only when asked."""
        found: dict[str, StoredEvent] = {}
        accepted = "" if include_rejected else " AND e.rejected_reason IS NULL"
        for chunk in _chunks(event_ids):
            rows = await self.db.fetchall(
                "get_events",
                f"SELECT {_DAG_COLUMNS} {_DAG_FROM} WHERE e.event_id IN ({_marks(len(chunk))})"
                f" AND {_DAG_VERSION} IS NOT NULL" + accepted,
                *chunk,
            )
            for row in rows:
                stored = _row_to_event(row)
                found[stored.event.event_id] = stored
        return found

    async def min_stream_ordering(self) -> int:
        """The lowest stream position in use: backfilled history goes below it."""
        value = await self.db.fetchval(
            "min_stream_ordering", "SELECT MIN(stream_ordering) FROM dag_events"
        )
        return min(int(value or 0), 0)

    async def get_forward_extremities(self, room_id: str) -> list[Extremity]:
        rows = await self.db.fetchall(
            "get_forward_extremities",
            "SELECT e.event_id, e.depth, e.stream_ordering, e.state_group"
            " FROM event_forward_extremities x JOIN dag_events e ON e.event_id = x.event_id"
            " WHERE x.room_id = ?",
            room_id,
        )
        return [Extremity(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def get_prev_events(self, event_ids: Collection[str]) -> dict[str, list[str]]:
        """event_id -> its prev_events, for the stored events among `event_ids`."""
        found: dict[str, list[str]] = {}
        for chunk in _chunks(event_ids):
            rows = await self.db.fetchall(
                "get_prev_events",
                "SELECT event_id, prev_event_id FROM event_edges"
                f" WHERE event_id IN ({_marks(len(chunk))})",
                *chunk,
            )
            for event_id, prev in rows:
                found.setdefault(str(event_id), []).append(str(prev))
        return found

    async def get_auth_chain_ids(self, event_ids: Collection[str]) -> set[str]:
        """Every auth ancestor of `event_ids` (through stored auth edges), not
        the events themselves unless one is an ancestor of another."""
        chain: set[str] = set()
        for chunk in _chunks(event_ids):
            rows = await self.db.fetchall(
                "get_auth_chain_ids",
                "WITH RECURSIVE chain(event_id) AS ("
                f" SELECT auth_id FROM event_auth WHERE event_id IN ({_marks(len(chunk))})"
                " UNION SELECT a.auth_id FROM event_auth a JOIN chain c ON a.event_id = c.event_id"
                ") SELECT event_id FROM chain",
                *chunk,
            )
            chain.update(str(r[0]) for r in rows)
        return chain

    async def get_pending_redactions(
        self, event_id: str, room_id: str
    ) -> list[tuple[str, str, bool]]:
        """Accepted redactions of `event_id` in `room_id`: (redaction ID,
        sender, whether the sender had the redact level), oldest first."""
        rows = await self.db.fetchall(
            "get_pending_redactions",
            "SELECT r.event_id, r.sender, r.sender_may_redact FROM redactions r"
            " JOIN dag_events e ON e.event_id = r.event_id"
            " WHERE r.redacts = ? AND r.room_id = ? ORDER BY e.stream_ordering LIMIT 20",
            event_id,
            room_id,
        )
        return [(str(r[0]), str(r[1]), bool(r[2])) for r in rows]

    async def has_timeline_children(self, event_id: str) -> bool:
        """Whether an accepted timeline event names `event_id` as a prev_event."""
        value = await self.db.fetchval(
            "has_timeline_children",
            "SELECT 1 FROM event_edges x JOIN events e ON e.event_id = x.event_id"
            " WHERE x.prev_event_id = ? LIMIT 1",
            event_id,
        )
        return value is not None

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

    async def get_read_positions(self, room_ids: Collection[str], user_id: str) -> dict[str, int]:
        """`get_read_position` of each room, in two queries per 500 rooms."""

        async def run(txn: Transaction) -> dict[str, int]:
            out = dict.fromkeys(room_ids, 0)
            for chunk in _chunks(room_ids):
                marks = _marks(len(chunk))
                receipts = await txn.fetchall(
                    "SELECT r.room_id, MAX(e.stream_ordering) FROM receipts r"
                    " JOIN events e ON e.event_id = r.event_id"
                    f" WHERE r.room_id IN ({marks}) AND r.user_id = ?"
                    " AND r.receipt_type IN ('m.read', 'm.read.private') GROUP BY r.room_id",
                    (*chunk, user_id),
                )
                own = await txn.fetchall(
                    "SELECT room_id, MAX(stream_ordering) FROM events"
                    f" WHERE room_id IN ({marks}) AND sender = ? GROUP BY room_id",
                    (*chunk, user_id),
                )
                for row in [*receipts, *own]:
                    room_id = str(row[0])
                    out[room_id] = max(out[room_id], int(row[1] or 0))
            return out

        return await self.db.run_interaction("get_read_positions", run)

    async def get_latest(self, room_id: str) -> tuple[str, int, int, int] | None:
        """(event_id, depth, stream_ordering, state_group) of the room's newest
        timeline event."""
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
        return (await self.get_state_ids_many([group])).get(group, {})

    async def get_state_ids_many(
        self, groups: Collection[int]
    ) -> dict[int, dict[tuple[str, str], str]]:
        """The full state of each group, in one query per 500 groups: the
        database walks every delta chain back to its snapshot."""

        async def run(txn: Transaction) -> dict[int, dict[tuple[str, str], str]]:
            out: dict[int, dict[tuple[str, str], str]] = {}
            for chunk in _chunks(groups):
                rows = await txn.fetchall(
                    "WITH RECURSIVE chain(start_group, group_id, depth) AS ("
                    " SELECT group_id, group_id, 0 FROM state_groups"
                    f" WHERE group_id IN ({_marks(len(chunk))})"
                    " UNION ALL"
                    " SELECT c.start_group, s.prev_group, c.depth + 1"
                    " FROM chain c JOIN state_groups s ON s.group_id = c.group_id"
                    " WHERE s.prev_group IS NOT NULL)"
                    " SELECT c.start_group, c.depth, e.type, e.state_key, e.event_id"
                    " FROM chain c JOIN state_group_entries e ON e.group_id = c.group_id",
                    chunk,
                )
                # Nearer groups (smaller depth) override those they delta against.
                rows.sort(key=lambda r: -int(r[1]))
                for r in rows:
                    out.setdefault(int(r[0]), {})[(str(r[2]), str(r[3]))] = str(r[4])
            for group in groups:
                out.setdefault(group, {})
            return out

        return await self.db.run_interaction("get_state_ids", run)
