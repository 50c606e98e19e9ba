"""Server-side key backup: backup versions and the encrypted room keys in them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: Any
    etag: int
    count: int


@dataclass(frozen=True, slots=True)
class RoomKey:
    room_id: str
    session_id: str
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "first_message_index": self.first_message_index,
            "forwarded_count": self.forwarded_count,
            "is_verified": self.is_verified,
            "session_data": self.session_data,
        }


# Decides whether `new` replaces `old` (the spec's rule lives in the handler).
ReplacePolicy = Callable[[RoomKey, RoomKey], bool]


async def _count(txn: Transaction, user_id: str, version: int) -> int:
    return int(
        await txn.fetchval(
            "SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = ? AND version = ?",
            (user_id, version),
        )
        or 0
    )


class KeyBackupStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_version(self, user_id: str, algorithm: str, auth_data: Any) -> int:
        """A new version, numbered after every earlier one (deleted ones too)."""

        async def run(txn: Transaction) -> int:
            top = await txn.fetchval(
                "SELECT MAX(version) FROM e2e_room_keys_versions WHERE user_id = ?", (user_id,)
            )
            version = int(top or 0) + 1
            await txn.execute(
                "INSERT INTO e2e_room_keys_versions"
                " (user_id, version, algorithm, auth_data, etag, deleted)"
                " VALUES (?, ?, ?, ?, 0, ?)",
                (user_id, version, algorithm, orjson.dumps(auth_data).decode(), False),
            )
            return version

        return await self.db.run_interaction("create_backup_version", run)

    async def get_version(self, user_id: str, version: int | None) -> BackupVersion | None:
        """That version (None: the current one, the newest) unless deleted."""

        async def run(txn: Transaction) -> BackupVersion | None:
            if version is None:
                row = await txn.fetchone(
                    "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
                    " WHERE user_id = ? AND deleted = ? ORDER BY version DESC LIMIT 1",
                    (user_id, False),
                )
            else:
                row = await txn.fetchone(
                    "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
                    " WHERE user_id = ? AND version = ? AND deleted = ?",
                    (user_id, version, False),
                )
            if row is None:
                return None
            count = await _count(txn, user_id, int(row[0]))
            return BackupVersion(int(row[0]), str(row[1]), orjson.loads(row[2]), int(row[3]), count)

        return await self.db.run_interaction("get_backup_version", run)

    async def update_version(self, user_id: str, version: int, auth_data: Any) -> None:
        await self.db.execute(
            "update_backup_version",
            "UPDATE e2e_room_keys_versions SET auth_data = ? WHERE user_id = ? AND version = ?",
            orjson.dumps(auth_data).decode(),
            user_id,
            version,
        )

    async def delete_version(self, user_id: str, version: int) -> bool:
        async def run(txn: Transaction) -> bool:
            changed = await txn.execute(
                "UPDATE e2e_room_keys_versions SET deleted = ?"
                " WHERE user_id = ? AND version = ? AND deleted = ?",
                (True, user_id, version, False),
            )
            await txn.execute(
                "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?", (user_id, version)
            )
            return changed == 1

        return await self.db.run_interaction("delete_backup_version", run)

    async def put_keys(
        self, user_id: str, version: int, keys: Sequence[RoomKey], should_replace: ReplacePolicy
    ) -> tuple[int, int]:
        """Store the keys that are better than what is stored: (etag, count).

        The etag moves when anything changed.
        """

        async def run(txn: Transaction) -> tuple[int, int]:
            changed = False
            for key in keys:
                row = await txn.fetchone(
                    "SELECT first_message_index, forwarded_count, is_verified, session_data"
                    " FROM e2e_room_keys"
                    " WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?",
                    (user_id, version, key.room_id, key.session_id),
                )
                data = orjson.dumps(key.session_data).decode()
                if row is None:
                    await txn.execute(
                        "INSERT INTO e2e_room_keys (user_id, version, room_id, session_id,"
                        " first_message_index, forwarded_count, is_verified, session_data)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            user_id,
                            version,
                            key.room_id,
                            key.session_id,
                            key.first_message_index,
                            key.forwarded_count,
                            key.is_verified,
                            data,
                        ),
                    )
                    changed = True
                    continue
                old = RoomKey(
                    key.room_id,
                    key.session_id,
                    int(row[0]),
                    int(row[1]),
                    bool(row[2]),
                    orjson.loads(row[3]),
                )
                if not should_replace(old, key):
                    continue
                await txn.execute(
                    "UPDATE e2e_room_keys SET first_message_index = ?, forwarded_count = ?,"
                    " is_verified = ?, session_data = ?"
                    " WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?",
                    (
                        key.first_message_index,
                        key.forwarded_count,
                        key.is_verified,
                        data,
                        user_id,
                        version,
                        key.room_id,
                        key.session_id,
                    ),
                )
                changed = True
            if changed:
                await txn.execute(
                    "UPDATE e2e_room_keys_versions SET etag = etag + 1"
                    " WHERE user_id = ? AND version = ?",
                    (user_id, version),
                )
            etag = await txn.fetchval(
                "SELECT etag FROM e2e_room_keys_versions WHERE user_id = ? AND version = ?",
                (user_id, version),
            )
            return int(etag or 0), await _count(txn, user_id, version)

        return await self.db.run_interaction("put_room_keys", run)

    async def get_keys(
        self, user_id: str, version: int, room_id: str | None, session_id: str | None
    ) -> list[RoomKey]:
        sql = (
            "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,"
            " session_data FROM e2e_room_keys WHERE user_id = ? AND version = ?"
        )
        args: list[Any] = [user_id, version]
        if room_id is not None:
            sql += " AND room_id = ?"
            args.append(room_id)
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
        rows = await self.db.fetchall("get_room_keys", sql + " ORDER BY room_id, session_id", *args)
        return [
            RoomKey(str(r[0]), str(r[1]), int(r[2]), int(r[3]), bool(r[4]), orjson.loads(r[5]))
            for r in rows
        ]

    async def delete_keys(
        self, user_id: str, version: int, room_id: str | None, session_id: str | None
    ) -> tuple[int, int]:
        """Delete keys; (etag, count) afterwards. The etag moves if any went."""

        async def run(txn: Transaction) -> tuple[int, int]:
            sql = "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?"
            args: list[Any] = [user_id, version]
            if room_id is not None:
                sql += " AND room_id = ?"
                args.append(room_id)
            if session_id is not None:
                sql += " AND session_id = ?"
                args.append(session_id)
            if await txn.execute(sql, args):
                await txn.execute(
                    "UPDATE e2e_room_keys_versions SET etag = etag + 1"
                    " WHERE user_id = ? AND version = ?",
                    (user_id, version),
                )
            etag = await txn.fetchval(
                "SELECT etag FROM e2e_room_keys_versions WHERE user_id = ? AND version = ?",
                (user_id, version),
            )
            return int(etag or 0), await _count(txn, user_id, version)

        return await self.db.run_interaction("delete_room_keys", run)
