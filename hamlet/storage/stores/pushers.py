"""Pushers and the push actions they deliver (/notifications reads them too)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.database import Database, Row, Transaction

_PUSHER_COLUMNS = (
    "user_id, app_id, pushkey, device_id, kind, app_display_name, device_display_name,"
    " profile_tag, lang, data, pushkey_ts, last_stream_ordering, failing_since"
)
# The user's newest read receipt in a room, as a stream position.
_READ_UPTO = (
    "COALESCE((SELECT MAX(e.stream_ordering) FROM receipts r"
    " JOIN events e ON e.event_id = r.event_id"
    " WHERE r.user_id = a.user_id AND r.room_id = a.room_id"
    " AND r.receipt_type IN ('m.read', 'm.read.private')), 0)"
)


@dataclass(frozen=True, slots=True)
class PusherRow:
    user_id: str
    app_id: str
    pushkey: str
    device_id: str | None
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str
    lang: str
    data: dict[str, Any]
    pushkey_ts: int
    last_stream_ordering: int
    failing_since: int | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user_id, self.app_id, self.pushkey)


@dataclass(frozen=True, slots=True)
class PushAction:
    user_id: str
    stream_ordering: int
    room_id: str
    event_id: str
    actions: list[Any]
    highlight: bool
    ts: int


@dataclass(frozen=True, slots=True)
class Notification:
    action: PushAction
    read: bool


def _pusher(row: Row) -> PusherRow:
    return PusherRow(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        row[3],
        str(row[4]),
        str(row[5]),
        str(row[6]),
        str(row[7]),
        str(row[8]),
        orjson.loads(row[9]),
        int(row[10]),
        int(row[11]),
        None if row[12] is None else int(row[12]),
    )


def _action(row: Row) -> PushAction:
    return PushAction(
        str(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        orjson.loads(row[4]),
        bool(row[5]),
        int(row[6]),
    )


class PushersStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- pushers ---

    async def get_pushers(self, user_id: str) -> list[PusherRow]:
        rows = await self.db.fetchall(
            "get_pushers",
            f"SELECT {_PUSHER_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey",
            user_id,
        )
        return [_pusher(r) for r in rows]

    async def get_pusher(self, user_id: str, app_id: str, pushkey: str) -> PusherRow | None:
        row = await self.db.fetchone(
            "get_pusher",
            f"SELECT {_PUSHER_COLUMNS} FROM pushers"
            " WHERE user_id = ? AND app_id = ? AND pushkey = ?",
            user_id,
            app_id,
            pushkey,
        )
        return None if row is None else _pusher(row)

    async def get_all_pushers(self, limit: int) -> list[PusherRow]:
        rows = await self.db.fetchall(
            "get_all_pushers",
            f"SELECT {_PUSHER_COLUMNS} FROM pushers ORDER BY user_id, app_id, pushkey LIMIT ?",
            limit,
        )
        return [_pusher(r) for r in rows]

    async def set_pusher(
        self, pusher: PusherRow, *, remove_others: bool, max_per_user: int
    ) -> tuple[bool, list[tuple[str, str, str]]]:
        """Add or replace a pusher; with `remove_others`, the same app_id and
        pushkey of every other user goes. (stored, keys removed); not stored
        when the user already has `max_per_user` others."""

        async def run(txn: Transaction) -> tuple[bool, list[tuple[str, str, str]]]:
            existing = await txn.fetchval(
                "SELECT last_stream_ordering FROM pushers"
                " WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                (pusher.user_id, pusher.app_id, pusher.pushkey),
            )
            if existing is None:
                count = int(
                    await txn.fetchval(
                        "SELECT COUNT(*) FROM pushers WHERE user_id = ?", (pusher.user_id,)
                    )
                )
                if count >= max_per_user:
                    return False, []
            removed: list[tuple[str, str, str]] = []
            if remove_others:
                rows = await txn.fetchall(
                    "SELECT user_id FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?",
                    (pusher.app_id, pusher.pushkey, pusher.user_id),
                )
                removed = [(str(r[0]), pusher.app_id, pusher.pushkey) for r in rows]
                await txn.execute(
                    "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ?",
                    (pusher.app_id, pusher.pushkey, pusher.user_id),
                )
            await txn.execute(
                "DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                (pusher.user_id, pusher.app_id, pusher.pushkey),
            )
            # A replaced pusher keeps its delivery position: nothing is sent twice.
            last = pusher.last_stream_ordering if existing is None else int(existing)
            await txn.execute(
                f"INSERT INTO pushers ({_PUSHER_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    pusher.user_id,
                    pusher.app_id,
                    pusher.pushkey,
                    pusher.device_id,
                    pusher.kind,
                    pusher.app_display_name,
                    pusher.device_display_name,
                    pusher.profile_tag,
                    pusher.lang,
                    orjson.dumps(pusher.data).decode(),
                    pusher.pushkey_ts,
                    last,
                ),
            )
            return True, removed

        return await self.db.run_interaction("set_pusher", run)

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> bool:
        deleted = await self.db.execute(
            "delete_pusher",
            "DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?",
            user_id,
            app_id,
            pushkey,
        )
        return deleted > 0

    async def delete_pushers_of_user(self, user_id: str) -> None:
        await self.db.execute(
            "delete_pushers_of_user", "DELETE FROM pushers WHERE user_id = ?", user_id
        )

    async def set_progress(
        self,
        user_id: str,
        app_id: str,
        pushkey: str,
        last_stream_ordering: int,
        failing_since: int | None,
    ) -> None:
        await self.db.execute(
            "set_pusher_progress",
            "UPDATE pushers SET last_stream_ordering = ?, failing_since = ?"
            " WHERE user_id = ? AND app_id = ? AND pushkey = ?",
            last_stream_ordering,
            failing_since,
            user_id,
            app_id,
            pushkey,
        )

    # --- push actions ---

    async def add_push_actions(self, actions: Sequence[PushAction]) -> None:
        if not actions:
            return

        async def run(txn: Transaction) -> None:
            await txn.executemany(
                "INSERT INTO event_push_actions"
                " (user_id, stream_ordering, room_id, event_id, actions, highlight, ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (
                        a.user_id,
                        a.stream_ordering,
                        a.room_id,
                        a.event_id,
                        orjson.dumps(a.actions).decode(),
                        int(a.highlight),
                        a.ts,
                    )
                    for a in actions
                ],
            )

        await self.db.run_interaction("add_push_actions", run)

    async def get_push_actions_after(
        self, user_id: str, after: int, limit: int
    ) -> list[PushAction]:
        """The user's push actions past `after`, oldest first."""
        rows = await self.db.fetchall(
            "get_push_actions_after",
            "SELECT user_id, stream_ordering, room_id, event_id, actions, highlight, ts"
            " FROM event_push_actions WHERE user_id = ? AND stream_ordering > ?"
            " ORDER BY stream_ordering LIMIT ?",
            user_id,
            after,
            limit,
        )
        return [_action(r) for r in rows]

    async def get_notifications(
        self, user_id: str, before: int | None, limit: int, *, only_highlight: bool
    ) -> list[Notification]:
        """The user's notifications newest first, before `before` (a stream
        position), each with whether the user's read receipt covers it."""
        clauses = ["a.user_id = ?"]
        args: list[Any] = [user_id]
        if before is not None:
            clauses.append("a.stream_ordering < ?")
            args.append(before)
        if only_highlight:
            clauses.append("a.highlight = 1")
        rows = await self.db.fetchall(
            "get_notifications",
            "SELECT a.user_id, a.stream_ordering, a.room_id, a.event_id, a.actions,"
            f" a.highlight, a.ts, {_READ_UPTO} FROM event_push_actions a"
            f" WHERE {' AND '.join(clauses)} ORDER BY a.stream_ordering DESC LIMIT ?",
            *args,
            limit,
        )
        return [Notification(_action(r), int(r[1]) <= int(r[7])) for r in rows]

    async def unread_rooms(self, user_id: str, room_ids: Sequence[str]) -> dict[str, int]:
        """Unread notifications per room (among `room_ids`): push actions
        past the user's read receipt there."""
        if not room_ids:
            return {}
        marks = ",".join("?" * len(room_ids))
        rows = await self.db.fetchall(
            "unread_push_actions",
            "SELECT a.room_id, COUNT(*) FROM event_push_actions a"
            f" WHERE a.user_id = ? AND a.room_id IN ({marks})"
            f" AND a.stream_ordering > {_READ_UPTO} GROUP BY a.room_id",
            user_id,
            *room_ids,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def delete_push_actions_before(self, ts: int) -> int:
        return await self.db.execute(
            "prune_push_actions", "DELETE FROM event_push_actions WHERE ts < ?", ts
        )

    async def events_after(self, after: int, upto: int, limit: int) -> list[int]:
        """Stream positions of events in (after, upto], oldest first."""
        rows = await self.db.fetchall(
            "push_events_after",
            "SELECT stream_ordering FROM events WHERE stream_ordering > ? AND stream_ordering <= ?"
            " ORDER BY stream_ordering LIMIT ?",
            after,
            upto,
            limit,
        )
        return [int(r[0]) for r in rows]
