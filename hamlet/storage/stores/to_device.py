"""To-device messages: an inbox per device, and the txn ids already accepted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.byte_budget import last_within
from hamlet.storage.database import Database, Transaction
from hamlet.storage.stream_ids import record_high_water_mark

logger = logging.getLogger(__name__)

TO_DEVICE_STREAM = "to_device"


@dataclass(frozen=True, slots=True)
class QueueCaps:
    """How many undelivered messages one sender may queue for one device, and
    how many one device may hold in all."""

    per_sender: int
    per_device: int


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One message for one device; `stream_id` is filled in by the caller."""

    user_id: str
    device_id: str
    sender: str
    type: str
    content: Any
    stream_id: int


def _text_and_size(message: InboxMessage) -> tuple[str, int]:
    encoded = orjson.dumps(message.content)
    return encoded.decode(), len(encoded)


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
        caps: QueueCaps,
    ) -> list[InboxMessage] | None:
        """Store the messages unless this (sender, device, txn_id) was seen (None).

        Returns the messages stored. A sender at its cap for a device loses its
        own oldest message there, so it can never crowd out other senders; a
        device holding `caps.per_device` messages takes no more until it syncs.
        """

        async def run(txn: Transaction) -> list[InboxMessage] | None:
            seen = await txn.fetchval(
                "SELECT 1 FROM device_inbox_txns"
                " WHERE sender = ? AND sender_device = ? AND txn_id = ?",
                (sender, sender_device, txn_id),
            )
            if seen is not None:
                return None
            await txn.execute(
                "INSERT INTO device_inbox_txns (sender, sender_device, txn_id, ts)"
                " VALUES (?, ?, ?, ?)",
                (sender, sender_device, txn_id, ts),
            )
            kept = await _make_room(txn, sender, messages, caps)
            if kept:
                await txn.executemany(
                    "INSERT INTO device_inbox"
                    " (stream_id, user_id, device_id, sender, type, content, size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (m.stream_id, m.user_id, m.device_id, m.sender, m.type, *_text_and_size(m))
                        for m in kept
                    ],
                )
            return kept

        return await self.db.run_interaction("add_to_device_messages", run)

    async def get_messages(
        self, user_id: str, device_id: str, since: int, upto: int, limit: int, max_bytes: int
    ) -> tuple[list[InboxMessage], bool]:
        """The device's messages in (since, upto], oldest first, at most `limit`
        and `max_bytes` of content (but always the first); and whether that
        was all of them up to `limit`."""

        async def run(txn: Transaction) -> tuple[list[InboxMessage], bool]:
            where = " WHERE user_id = ? AND device_id = ? AND stream_id > ? AND stream_id <= ?"
            sizes = await txn.fetchall(
                "SELECT stream_id, size FROM device_inbox" + where + " ORDER BY stream_id LIMIT ?",
                (user_id, device_id, since, upto, limit),
            )
            if not sizes:
                return [], True
            cut = last_within(sizes, max_bytes)
            rows = await txn.fetchall(
                "SELECT stream_id, sender, type, content FROM device_inbox"
                + where
                + " ORDER BY stream_id LIMIT ?",
                (user_id, device_id, since, upto if cut is None else cut, limit),
            )
            messages = [
                InboxMessage(user_id, device_id, sender, type_, orjson.loads(content), int(sid))
                for sid, sender, type_, content in rows
            ]
            return messages, cut is None

        return await self.db.run_interaction("get_to_device_messages", run)

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


_QUEUE_COUNT_CHUNK = 100


async def _make_room(
    txn: Transaction, sender: str, messages: Sequence[InboxMessage], caps: QueueCaps
) -> list[InboxMessage]:
    """The messages whose device can take them, after evicting the sender's
    oldest where it is at its own cap. One message per device is assumed."""
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    users = sorted({m.user_id for m in messages})
    for start in range(0, len(users), _QUEUE_COUNT_CHUNK):
        chunk = users[start : start + _QUEUE_COUNT_CHUNK]
        rows = await txn.fetchall(
            "SELECT user_id, device_id, COUNT(*),"
            " SUM(CASE WHEN sender = ? THEN 1 ELSE 0 END) FROM device_inbox"
            f" WHERE user_id IN ({', '.join('?' for _ in chunk)})"
            " GROUP BY user_id, device_id",
            (sender, *chunk),
        )
        for user_id, device_id, total, from_sender in rows:
            counts[(user_id, device_id)] = (int(total), int(from_sender))
    kept: list[InboxMessage] = []
    for m in messages:
        total, from_sender = counts.get((m.user_id, m.device_id), (0, 0))
        if from_sender >= caps.per_sender:
            await txn.execute(
                "DELETE FROM device_inbox WHERE user_id = ? AND device_id = ? AND sender = ?"
                " AND stream_id <= (SELECT stream_id FROM device_inbox"
                "  WHERE user_id = ? AND device_id = ? AND sender = ?"
                "  ORDER BY stream_id LIMIT 1 OFFSET ?)",
                (
                    *(m.user_id, m.device_id, sender) * 2,
                    from_sender - caps.per_sender,
                ),
            )
        elif total >= caps.per_device:
            logger.info(
                "Dropping to-device message from %s: %s's device %s has %d queued",
                sender,
                m.user_id,
                m.device_id,
                total,
            )
            continue
        kept.append(m)
    return kept
