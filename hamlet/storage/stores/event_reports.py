"""Reports of events that users find offensive, for the admins to read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hamlet.storage.database import Database, Transaction
from hamlet.storage.stores.admin_users import like_pattern

_COLUMNS = "id, received_ts, room_id, event_id, user_id, sender, reason, score"


@dataclass(frozen=True, slots=True)
class EventReport:
    id: int
    received_ts: int
    room_id: str
    event_id: str
    user_id: str
    sender: str
    reason: str | None
    score: int | None


def _report(row: Sequence[Any]) -> EventReport:
    return EventReport(
        id=int(row[0]),
        received_ts=int(row[1]),
        room_id=str(row[2]),
        event_id=str(row[3]),
        user_id=str(row[4]),
        sender=str(row[5]),
        reason=None if row[6] is None else str(row[6]),
        score=None if row[7] is None else int(row[7]),
    )


class EventReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        received_ts: int,
        room_id: str,
        event_id: str,
        user_id: str,
        sender: str,
        reason: str | None,
        score: int | None,
    ) -> int:
        async def txn_fn(txn: Transaction) -> int:
            row = await txn.fetchone(
                "INSERT INTO event_reports (received_ts, room_id, event_id, user_id, sender,"
                " reason, score) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (received_ts, room_id, event_id, user_id, sender, reason, score),
            )
            assert row is not None
            return int(row[0])

        return await self.db.run_interaction("add_event_report", txn_fn)

    async def get(self, report_id: int) -> EventReport | None:
        row = await self.db.fetchone(
            "get_event_report", f"SELECT {_COLUMNS} FROM event_reports WHERE id = ?", report_id
        )
        return None if row is None else _report(row)

    async def delete(self, report_id: int) -> bool:
        changed = await self.db.execute(
            "delete_event_report", "DELETE FROM event_reports WHERE id = ?", report_id
        )
        return changed > 0

    async def list(
        self,
        *,
        start: int,
        limit: int,
        backwards: bool,
        room_id: str | None = None,
        user_id: str | None = None,
        sender: str | None = None,
    ) -> tuple[list[EventReport], int]:
        where: list[str] = []
        args: list[Any] = []
        if room_id is not None:
            where.append("room_id LIKE ? ESCAPE '\\'")
            args.append(like_pattern(room_id))
        if user_id is not None:
            where.append("user_id LIKE ? ESCAPE '\\'")
            args.append(like_pattern(user_id))
        if sender is not None:
            where.append("sender = ?")
            args.append(sender)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        direction = "DESC" if backwards else "ASC"

        async def txn_fn(txn: Transaction) -> tuple[list[EventReport], int]:
            total = await txn.fetchval(f"SELECT COUNT(*) FROM event_reports{clause}", tuple(args))
            rows = await txn.fetchall(
                f"SELECT {_COLUMNS} FROM event_reports{clause}"
                f" ORDER BY received_ts {direction}, id {direction} LIMIT ? OFFSET ?",
                (*args, limit, start),
            )
            return [_report(r) for r in rows], int(total or 0)

        return await self.db.run_interaction("list_event_reports", txn_fn)
