"""Account data: global (room_id '') and per room, one row per (user, room, type)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction

GLOBAL = ""  # room_id column value of global account data


@dataclass(frozen=True, slots=True)
class AccountDataRow:
    room_id: str | None  # None: global
    type: str
    content: dict[str, Any]
    stream_id: int


async def put_account_data_txn(
    txn: Transaction,
    user_id: str,
    room_id: str | None,
    data_type: str,
    content: Any,
    stream_id: int,
) -> None:
    """Upsert one entry inside a caller's transaction (also used by push rules,
    which write their own table and `m.push_rules` together)."""
    await txn.execute(
        "INSERT INTO account_data (user_id, room_id, type, content, stream_id)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, room_id, type) DO UPDATE SET"
        " content = excluded.content, stream_id = excluded.stream_id",
        (
            user_id,
            room_id if room_id is not None else GLOBAL,
            data_type,
            orjson.dumps(content).decode(),
            stream_id,
        ),
    )


async def _has_room_for(
    txn: Transaction, user_id: str, room_key: str, data_type: str, max_entries: int
) -> bool:
    """Whether the entry exists already or the user has fewer than `max_entries`."""
    found = await txn.fetchval(
        "SELECT 1 FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
        (user_id, room_key, data_type),
    )
    if found is not None:
        return True
    count = await txn.fetchval("SELECT COUNT(*) FROM account_data WHERE user_id = ?", (user_id,))
    return int(count) < max_entries


class AccountDataStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(
        self,
        user_id: str,
        room_id: str | None,
        data_type: str,
        content: Any,
        stream_id: int,
        *,
        max_entries: int,
    ) -> bool:
        """Upsert one entry; False (nothing written) if it is new and the user
        already has `max_entries`."""
        room_key = room_id if room_id is not None else GLOBAL

        async def run(txn: Transaction) -> bool:
            if not await _has_room_for(txn, user_id, room_key, data_type, max_entries):
                return False
            await put_account_data_txn(txn, user_id, room_id, data_type, content, stream_id)
            return True

        return await self.db.run_interaction("put_account_data", run)

    async def update(
        self,
        user_id: str,
        room_id: str | None,
        data_type: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any]],
        stream_id: int,
        *,
        max_entries: int,
    ) -> dict[str, Any] | None:
        """Read-modify-write one entry in a transaction; returns the new content,
        or None (nothing written) if it is new and the user has `max_entries`."""
        room_key = room_id if room_id is not None else GLOBAL

        async def run(txn: Transaction) -> dict[str, Any] | None:
            if not await _has_room_for(txn, user_id, room_key, data_type, max_entries):
                return None
            raw = await txn.fetchval(
                "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
                (user_id, room_key, data_type),
            )
            old = orjson.loads(raw) if raw is not None else None
            new = change(old if isinstance(old, dict) else None)
            await put_account_data_txn(txn, user_id, room_id, data_type, new, stream_id)
            return new

        result: Awaitable[dict[str, Any] | None] = self.db.run_interaction(
            "update_account_data", run
        )
        return await result

    async def get(self, user_id: str, room_id: str | None, data_type: str) -> Any | None:
        raw = await self.db.fetchval(
            "get_account_data",
            "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
            user_id,
            room_id if room_id is not None else GLOBAL,
            data_type,
        )
        return None if raw is None else orjson.loads(raw)

    async def get_per_room(self, user_id: str, data_type: str) -> dict[str, Any]:
        """The user's room account data of one type, by room."""
        rows = await self.db.fetchall(
            "get_account_data_per_room",
            "SELECT room_id, content FROM account_data"
            " WHERE user_id = ? AND type = ? AND room_id <> ?",
            user_id,
            data_type,
            GLOBAL,
        )
        return {str(r[0]): orjson.loads(r[1]) for r in rows}

    async def get_changed(self, user_id: str, since: int, upto: int) -> list[AccountDataRow]:
        """Entries of the user with since < stream_id <= upto, oldest first."""
        rows = await self.db.fetchall(
            "get_changed_account_data",
            "SELECT room_id, type, content, stream_id FROM account_data"
            " WHERE user_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id",
            user_id,
            since,
            upto,
        )
        return [AccountDataRow(r[0] or None, r[1], orjson.loads(r[2]), int(r[3])) for r in rows]
