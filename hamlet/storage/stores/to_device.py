"""To-device messages: an inbox per device, and the txn ids already accepted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction
from hamlet.storage.stream_ids import record_high_water_mark

TO_DEVICE_STREAM = "to_device"


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One message for one device; `stream_id` is filled in by the caller."""

    user_id: str
    device_id: str
    sender: str
    type: str
    content: Any
    stream_id: int


class ToDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_messages(
        self,
        sender: str,
        sender_device: str,
        txn_id: str,
        messages: Sequence[InboxMessage],
        ts: int,
    ) -> bool:
        """Store the messages unless this (sender, device, txn_id) was seen: True if new."""

        async def run(txn: Transaction) -> bool:
            seen = await txn.fetchval(
                "SELECT 1 FROM device_inbox_txns"
                " WHERE sender = ? AND sender_device = ? AND txn_id = ?",
                (sender, sender_device, txn_id),
            )
            if seen is not None:
                return False
            await txn.execute(
                "INSERT INTO device_inbox_txns (sender, sender_device, txn_id, ts)"
                " VALUES (?, ?, ?, ?)",
                (sender, sender_device, txn_id, ts),
            )
            if messages:
                await txn.executemany(
                    "INSERT INTO device_inbox"
                    " (stream_id, user_id, device_id, sender, type, content)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            m.stream_id,
                            m.user_id,
                            m.device_id,
                            m.sender,
                            m.type,
                            orjson.dumps(m.content).decode(),
                        )
                        for m in messages
                    ],
                )
            return True

        return await self.db.run_interaction("add_to_device_messages", run)

    async def get_messages(
        self, user_id: str, device_id: str, since: int, upto: int, limit: int
    ) -> list[InboxMessage]:
        rows = await self.db.fetchall(
            "get_to_device_messages",
            "SELECT stream_id, sender, type, content FROM device_inbox"
            " WHERE user_id = ? AND device_id = ? AND stream_id > ? AND stream_id <= ?"
            " ORDER BY stream_id LIMIT ?",
            user_id,
            device_id,
            since,
            upto,
            limit,
        )
        return [
            InboxMessage(user_id, device_id, r[1], r[2], orjson.loads(r[3]), int(r[0]))
            for r in rows
        ]

    async def delete_messages(self, user_id: str, device_id: str, upto: int) -> int:
        """Delete the device's messages with stream_id <= upto; returns how many."""

        async def run(txn: Transaction) -> int:
            top = await txn.fetchval(
                "SELECT MAX(stream_id) FROM device_inbox"
                " WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
                (user_id, device_id, upto),
            )
            if top is None:
                return 0
            await record_high_water_mark(txn, TO_DEVICE_STREAM, int(top))
            return await txn.execute(
                "DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
                (user_id, device_id, upto),
            )

        return await self.db.run_interaction("delete_to_device_messages", run)

    async def delete_txn_ids_before(self, ts: int) -> int:
        return await self.db.execute(
            "delete_old_to_device_txns", "DELETE FROM device_inbox_txns WHERE ts < ?", ts
        )
