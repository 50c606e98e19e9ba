"""Read receipts, linearized: the latest one per (room, type, user, thread)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

from hamlet.storage.database import Database, Transaction

UNTHREADED = ""  # thread_id column value of an unthreaded receipt

_CHUNK = 500


def chunks(items: Collection[str], size: int = _CHUNK) -> Iterator[list[str]]:
    ordered = list(items)
    for i in range(0, len(ordered), size):
        yield ordered[i : i + size]


@dataclass(frozen=True, slots=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str | None  # None: unthreaded
    event_id: str
    ts: int
    stream_id: int


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert_receipt(
        self,
        room_id: str,
        receipt_type: str,
        user_id: str,
        thread_id: str | None,
        event_id: str,
        ts: int,
        stream_id: int,
    ) -> None:
        await self.db.execute(
            "upsert_receipt",
            "INSERT INTO receipts"
            " (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET"
            " event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id",
            room_id,
            receipt_type,
            user_id,
            thread_id if thread_id is not None else UNTHREADED,
            event_id,
            ts,
            stream_id,
        )

    async def get_receipts_in_rooms(
        self, room_ids: Collection[str], since: int, upto: int
    ) -> list[Receipt]:
        """Receipts in these rooms with since < stream_id <= upto, oldest first."""
        if not room_ids:
            return []

        async def read(txn: Transaction) -> list[Receipt]:
            out: list[Receipt] = []
            for chunk in chunks(room_ids):
                marks = ", ".join("?" for _ in chunk)
                rows = await txn.fetchall(
                    "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id"
                    f" FROM receipts WHERE room_id IN ({marks})"
                    " AND stream_id > ? AND stream_id <= ?",
                    (*chunk, since, upto),
                )
                out.extend(
                    Receipt(r[0], r[1], r[2], r[3] or None, r[4], int(r[5]), int(r[6]))
                    for r in rows
                )
            out.sort(key=lambda r: r.stream_id)
            return out

        return await self.db.run_interaction("get_receipts_in_rooms", read)

    async def get_user_receipt(
        self, room_id: str, receipt_type: str, user_id: str, thread_id: str | None
    ) -> Receipt | None:
        row = await self.db.fetchone(
            "get_user_receipt",
            "SELECT event_id, ts, stream_id FROM receipts WHERE room_id = ?"
            " AND receipt_type = ? AND user_id = ? AND thread_id = ?",
            room_id,
            receipt_type,
            user_id,
            thread_id if thread_id is not None else UNTHREADED,
        )
        if row is None:
            return None
        return Receipt(room_id, receipt_type, user_id, thread_id, row[0], int(row[1]), int(row[2]))
