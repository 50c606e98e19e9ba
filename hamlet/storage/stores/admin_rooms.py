"""What the admin rooms API reads and writes: room statistics, blocks and purges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction
from hamlet.storage.stores.search_index import unindex_room

# The single-valued state events a room's statistics are read from.
STATS_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.encryption",
)

# Tables with a `room_id` column whose rows go when a room is purged, in
# the order they are emptied. `event_txn_ids` and `state_group_entries`
# have no room_id and are emptied through events/state_groups first.
PURGED_TABLES = (
    "current_state",
    "room_memberships",
    "room_aliases",
    "receipts",
    "event_edges",
    "event_auth",
    "event_forward_extremities",
    "dag_events",
    "state_groups",
    "server_notice_rooms",
    "rooms",
)


@dataclass(slots=True)
class RoomStats:
    room_id: str
    room_version: str
    creator: str
    room_type: str | None
    is_public: bool
    blocked: bool
    #: (type) -> content of the current single-valued state event ('' state key).
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    joined_members: int = 0
    joined_local_members: int = 0
    state_events: int = 0


def _content(raw: str, redacted: bool) -> dict[str, Any]:
    if redacted:
        return {}
    content = orjson.loads(raw).get("content")
    return content if isinstance(content, dict) else {}


def _marks(n: int) -> str:
    return ",".join("?" * n)


class AdminRoomsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Statistics

    async def get_room_stats(
        self, server_name: str, room_ids: Sequence[str] | None = None
    ) -> list[RoomStats]:
        """Statistics of the given rooms (every room when None), in room_id order."""

        async def run(txn: Transaction) -> list[RoomStats]:
            where, args = "", []
            if room_ids is not None:
                if not room_ids:
                    return []
                where = f" WHERE room_id IN ({_marks(len(room_ids))})"
                args = list(room_ids)
            rows = await txn.fetchall(
                "SELECT room_id, room_version, creator, room_type, is_public, blocked"
                f" FROM rooms{where} ORDER BY room_id",
                args,
            )
            stats = {
                str(r[0]): RoomStats(str(r[0]), str(r[1]), str(r[2]), r[3], bool(r[4]), bool(r[5]))
                for r in rows
            }
            if not stats:
                return []
            scope = f" AND cs.room_id IN ({_marks(len(stats))})" if room_ids is not None else ""
            scope_args = list(stats) if room_ids is not None else []
            types = _marks(len(STATS_STATE_TYPES))
            state_rows = await txn.fetchall(
                "SELECT cs.room_id, cs.type, e.json, e.redacted_by FROM current_state cs"
                " JOIN dag_events e ON e.event_id = cs.event_id"
                f" WHERE cs.state_key = '' AND cs.type IN ({types}){scope}",
                [*STATS_STATE_TYPES, *scope_args],
            )
            for room_id, event_type, raw, redacted_by in state_rows:
                entry = stats.get(str(room_id))
                if entry is not None:
                    entry.state[str(event_type)] = _content(str(raw), redacted_by is not None)
            plain_scope = scope.replace("cs.", "")
            count_rows = await txn.fetchall(
                "SELECT room_id, COUNT(*) FROM current_state"
                f" WHERE 1 = 1{plain_scope} GROUP BY room_id",
                scope_args,
            )
            for room_id, count in count_rows:
                entry = stats.get(str(room_id))
                if entry is not None:
                    entry.state_events = int(count)
            member_rows = await txn.fetchall(
                "SELECT room_id, user_id FROM room_memberships"
                f" WHERE membership = 'join'{plain_scope}",
                scope_args,
            )
            suffix = ":" + server_name
            for room_id, user_id in member_rows:
                entry = stats.get(str(room_id))
                if entry is not None:
                    entry.joined_members += 1
                    if str(user_id).endswith(suffix):
                        entry.joined_local_members += 1
            return list(stats.values())

        return await self.db.run_interaction("admin_get_room_stats", run)

    async def count_devices(self, user_ids: Sequence[str]) -> int:
        if not user_ids:
            return 0
        total = 0
        for start in range(0, len(user_ids), 500):
            chunk = list(user_ids[start : start + 500])
            value = await self.db.fetchval(
                "admin_count_devices",
                f"SELECT COUNT(*) FROM devices WHERE user_id IN ({_marks(len(chunk))})",
                *chunk,
            )
            total += int(value or 0)
        return total

    async def is_locally_forgotten(self, room_id: str, server_name: str) -> bool:
        """True when no local user has a membership of the room they haven't forgotten."""
        rows = await self.db.fetchall(
            "admin_is_locally_forgotten",
            "SELECT user_id FROM room_memberships WHERE room_id = ? AND forgotten = ?",
            room_id,
            False,
        )
        suffix = ":" + server_name
        return not any(str(r[0]).endswith(suffix) for r in rows)

    # Blocking

    async def block_room(self, room_id: str, user_id: str, ts: int) -> None:
        async def run(txn: Transaction) -> None:
            await txn.execute(
                "INSERT INTO blocked_rooms (room_id, user_id, blocked_ts) VALUES (?, ?, ?)"
                " ON CONFLICT (room_id) DO NOTHING",
                (room_id, user_id, ts),
            )
            await txn.execute("UPDATE rooms SET blocked = ? WHERE room_id = ?", (True, room_id))

        await self.db.run_interaction("admin_block_room", run)

    async def unblock_room(self, room_id: str) -> None:
        async def run(txn: Transaction) -> None:
            await txn.execute("DELETE FROM blocked_rooms WHERE room_id = ?", (room_id,))
            await txn.execute("UPDATE rooms SET blocked = ? WHERE room_id = ?", (False, room_id))

        await self.db.run_interaction("admin_unblock_room", run)

    async def room_blocked_by(self, room_id: str) -> str | None:
        value = await self.db.fetchval(
            "admin_room_blocked_by",
            "SELECT user_id FROM blocked_rooms WHERE room_id = ?",
            room_id,
        )
        return None if value is None else str(value)

    # Purging

    async def purge_room(self, room_id: str) -> None:
        """Delete every trace of a room (but not its block) in one transaction."""

        async def run(txn: Transaction) -> None:
            await unindex_room(txn, self.db.engine, room_id)
            await txn.execute(
                "DELETE FROM event_txn_ids WHERE event_id IN"
                " (SELECT event_id FROM dag_events WHERE room_id = ?)",
                (room_id,),
            )
            await txn.execute(
                "DELETE FROM state_group_entries WHERE group_id IN"
                " (SELECT group_id FROM state_groups WHERE room_id = ?)",
                (room_id,),
            )
            await txn.execute("DELETE FROM account_data WHERE room_id = ?", (room_id,))
            for table in PURGED_TABLES:
                await txn.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))

        await self.db.run_interaction("admin_purge_room", run)
