"""Sliding sync connections: positions and the rooms each connection has.

Rows are deltas: a response writes only the rooms it changed, and the
state at a position is, per room, its newest row at or before it. Using a
position prunes the rest: later positions (a branch the client never got,
since it retried) go, and older rows it shadows are folded away, so a
connection keeps about one row per room it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from hamlet.storage.database import Database, Transaction

NO_DEVICE = ""
#: `sent_position` of a room the connection no longer has.
DROPPED = -1


@dataclass(frozen=True, slots=True)
class StoredRoom:
    timeline_limit: int
    required_state: frozenset[tuple[str, str]]
    sent_position: int
    is_dm: bool


@dataclass(frozen=True, slots=True)
class StoredPosition:
    token: str
    rooms: dict[str, StoredRoom]


class SlidingSyncStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(
        self,
        conn_key: str,
        owner: tuple[str, str | None, str],
        now_ms: int,
        max_per_user: int,
    ) -> list[str]:
        """A connection (again): forgets the owner's previous one of that
        `conn_id` and the least recently used beyond `max_per_user`; returns
        the keys dropped."""
        user_id, device_id, conn_id = owner

        async def run(txn: Transaction) -> list[str]:
            dropped = [
                str(r[0])
                for r in await txn.fetchall(
                    "SELECT conn_key FROM sliding_sync_connections"
                    " WHERE user_id = ? AND device_id = ? AND conn_id = ?",
                    (user_id, device_id or NO_DEVICE, conn_id),
                )
            ]
            rows = await txn.fetchall(
                "SELECT conn_key FROM sliding_sync_connections WHERE user_id = ?"
                " ORDER BY last_used_ts DESC, conn_key",
                (user_id,),
            )
            others = [str(r[0]) for r in rows if str(r[0]) not in dropped]
            dropped += others[max_per_user - 1 :]
            for key in dropped:
                await _delete(txn, key)
            await txn.execute(
                "INSERT INTO sliding_sync_connections"
                " (conn_key, user_id, device_id, conn_id, last_used_ts) VALUES (?, ?, ?, ?, ?)",
                (conn_key, user_id, device_id or NO_DEVICE, conn_id, now_ms),
            )
            return dropped

        return await self.db.run_interaction("sliding_sync_start", run)

    async def load(
        self, conn_key: str, owner: tuple[str, str | None, str], position: int
    ) -> StoredPosition | None:
        """The state at `position` of the owner's connection; None if unknown."""
        user_id, device_id, conn_id = owner

        async def run(txn: Transaction) -> StoredPosition | None:
            token = await txn.fetchval(
                "SELECT p.token FROM sliding_sync_positions p"
                " JOIN sliding_sync_connections c ON c.conn_key = p.conn_key"
                " WHERE p.conn_key = ? AND p.position = ?"
                " AND c.user_id = ? AND c.device_id = ? AND c.conn_id = ?",
                (conn_key, position, user_id, device_id or NO_DEVICE, conn_id),
            )
            if token is None:
                return None
            rows = await txn.fetchall(
                "SELECT room_id, timeline_limit, required_state, sent_position, is_dm"
                " FROM sliding_sync_rooms WHERE conn_key = ? AND position <= ?"
                " ORDER BY position",
                (conn_key, position),
            )
            rooms: dict[str, StoredRoom] = {}
            for room_id, limit, required, sent, is_dm in rows:
                if int(sent) == DROPPED:
                    rooms.pop(str(room_id), None)
                    continue
                pairs = frozenset((str(t), str(k)) for t, k in orjson.loads(required))
                rooms[str(room_id)] = StoredRoom(int(limit), pairs, int(sent), bool(is_dm))
            return StoredPosition(str(token), rooms)

        return await self.db.run_interaction("sliding_sync_load", run)

    async def add(
        self,
        conn_key: str,
        base: int | None,
        token: str,
        changed: Mapping[str, StoredRoom | None],
        now_ms: int,
    ) -> int:
        """Record a new position, reached from `base` with `changed` (None:
        the room dropped), and return it; positions other than the two are
        forgotten. A number is never used twice in a connection, so the pos
        of a superseded response stays unknown; 0 (never a position) if the
        connection is gone."""

        async def run(txn: Transaction) -> int:
            exists = await txn.fetchval(
                "SELECT 1 FROM sliding_sync_connections WHERE conn_key = ?", (conn_key,)
            )
            if exists is None:
                # Started again (or evicted) meanwhile: this response's pos
                # will be unknown, and nothing is left behind for it.
                return 0
            highest = await txn.fetchval(
                "SELECT MAX(position) FROM sliding_sync_positions WHERE conn_key = ?",
                (conn_key,),
            )
            position = int(highest or 0) + 1
            if base is not None:
                # A branch after `base` was never received; older rows are shadowed.
                await txn.execute(
                    "DELETE FROM sliding_sync_rooms WHERE conn_key = ? AND position > ?",
                    (conn_key, base),
                )
                await txn.execute(
                    "DELETE FROM sliding_sync_positions WHERE conn_key = ? AND position <> ?",
                    (conn_key, base),
                )
                await txn.execute(
                    "DELETE FROM sliding_sync_rooms WHERE conn_key = ? AND position < ?"
                    " AND (sent_position = ? OR room_id IN (SELECT room_id FROM"
                    " sliding_sync_rooms WHERE conn_key = ? AND position = ?))",
                    (conn_key, base, DROPPED, conn_key, base),
                )
            await txn.execute(
                "INSERT INTO sliding_sync_positions (conn_key, position, token) VALUES (?, ?, ?)",
                (conn_key, position, token),
            )
            await txn.executemany(
                "INSERT INTO sliding_sync_rooms (conn_key, position, room_id, timeline_limit,"
                " required_state, sent_position, is_dm) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_row(conn_key, position, room_id, room) for room_id, room in changed.items()],
            )
            await txn.execute(
                "UPDATE sliding_sync_connections SET last_used_ts = ? WHERE conn_key = ?",
                (now_ms, conn_key),
            )
            return position

        return await self.db.run_interaction("sliding_sync_add", run)

    async def count_rows(self, conn_key: str) -> int:
        return int(
            await self.db.fetchval(
                "sliding_sync_count_rows",
                "SELECT COUNT(*) FROM sliding_sync_rooms WHERE conn_key = ?",
                conn_key,
            )
            or 0
        )


def _row(conn_key: str, position: int, room_id: str, room: StoredRoom | None) -> tuple[object, ...]:
    if room is None:
        return (conn_key, position, room_id, 0, "[]", DROPPED, False)
    required = orjson.dumps(sorted(room.required_state)).decode()
    return (
        conn_key,
        position,
        room_id,
        room.timeline_limit,
        required,
        room.sent_position,
        room.is_dm,
    )


async def _delete(txn: Transaction, conn_key: str) -> None:
    for table in ("sliding_sync_rooms", "sliding_sync_positions", "sliding_sync_connections"):
        await txn.execute(f"DELETE FROM {table} WHERE conn_key = ?", (conn_key,))
