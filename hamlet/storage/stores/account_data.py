"""Account data: global (room_id '') and per room, one row per (user, room, type)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.byte_budget import last_within
from hamlet.storage.database import Database, Transaction

GLOBAL = ""  # room_id column value of global account data
PUSH_RULES = "m.push_rules"


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
    encoded: bytes | None = None,
) -> None:
    """Upsert one entry inside a caller's transaction (also used by push rules,
    which write their own table and `m.push_rules` together); `encoded` is
    `content` as JSON if the caller has it already."""
    if encoded is None:
        encoded = orjson.dumps(content)
    await txn.execute(
        "INSERT INTO account_data (user_id, room_id, type, content, stream_id, size)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, room_id, type) DO UPDATE SET"
        " content = excluded.content, stream_id = excluded.stream_id, size = excluded.size",
        (
            user_id,
            room_id if room_id is not None else GLOBAL,
            data_type,
            encoded.decode(),
            stream_id,
            len(encoded),
        ),
    )


@dataclass(frozen=True, slots=True)
class AccountDataCaps:
    """What one user may store: entries, and bytes of JSON in all
    (`m.push_rules` left out: push rules have caps of their own)."""

    max_entries: int
    max_total_size: int


class Refused(enum.Enum):
    """Why an entry was not written."""

    TOO_MANY = "entries"
    TOO_BIG = "size"


async def _refusal(
    txn: Transaction, user_id: str, room_key: str, data_type: str, size: int, caps: AccountDataCaps
) -> Refused | None:
    """Whether writing `size` bytes as this entry would take the user over a cap."""
    row = await txn.fetchone(
        "SELECT COUNT(*),"
        " COALESCE(SUM(CASE WHEN room_id = ? AND type = ? THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN type = ? OR (room_id = ? AND type = ?) THEN 0"
        " ELSE size END), 0)"
        " FROM account_data WHERE user_id = ?",
        (room_key, data_type, PUSH_RULES, room_key, data_type, user_id),
    )
    count, exists, others = (int(v) for v in row) if row is not None else (0, 0, 0)
    if not exists and count >= caps.max_entries:
        return Refused.TOO_MANY
    if data_type != PUSH_RULES and others + size > caps.max_total_size:
        return Refused.TOO_BIG
    return None


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
        caps: AccountDataCaps,
    ) -> Refused | None:
        """Upsert one entry, unless that takes the user over a cap (then
        nothing is written and the reason returned)."""
        room_key = room_id if room_id is not None else GLOBAL
        encoded = orjson.dumps(content)

        async def run(txn: Transaction) -> Refused | None:
            refused = await _refusal(txn, user_id, room_key, data_type, len(encoded), caps)
            if refused is None:
                await put_account_data_txn(
                    txn, user_id, room_id, data_type, content, stream_id, encoded
                )
            return refused

        return await self.db.run_interaction("put_account_data", run)

    async def update(
        self,
        user_id: str,
        room_id: str | None,
        data_type: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any]],
        stream_id: int,
        *,
        caps: AccountDataCaps,
    ) -> Refused | None:
        """Read-modify-write one entry in a transaction, unless the new content
        takes the user over a cap (then nothing is written and the reason returned)."""
        room_key = room_id if room_id is not None else GLOBAL

        async def run(txn: Transaction) -> Refused | None:
            raw = await txn.fetchval(
                "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
                (user_id, room_key, data_type),
            )
            old = orjson.loads(raw) if raw is not None else None
            new = change(old if isinstance(old, dict) else None)
            encoded = orjson.dumps(new)
            refused = await _refusal(txn, user_id, room_key, data_type, len(encoded), caps)
            if refused is None:
                await put_account_data_txn(
                    txn, user_id, room_id, data_type, new, stream_id, encoded
                )
            return refused

        result: Awaitable[Refused | None] = self.db.run_interaction("update_account_data", run)
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

    async def get_changed(
        self, user_id: str, since: int, upto: int, max_size: int
    ) -> tuple[list[AccountDataRow], int]:
        """Entries of the user with since < stream_id <= upto, oldest first, at
        most `max_size` bytes of content (but always the first); and the
        stream position they cover (`upto` unless cut short)."""

        async def run(txn: Transaction) -> tuple[list[AccountDataRow], int]:
            sizes = await txn.fetchall(
                "SELECT stream_id, size FROM account_data"
                " WHERE user_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id",
                (user_id, since, upto),
            )
            if not sizes:
                return [], upto
            cut = last_within(sizes, max_size)
            covered = upto if cut is None else cut
            rows = await txn.fetchall(
                "SELECT room_id, type, content, stream_id FROM account_data"
                " WHERE user_id = ? AND stream_id > ? AND stream_id <= ? ORDER BY stream_id",
                (user_id, since, covered),
            )
            return [
                AccountDataRow(r[0] or None, r[1], orjson.loads(r[2]), int(r[3])) for r in rows
            ], covered

        return await self.db.run_interaction("get_changed_account_data", run)
