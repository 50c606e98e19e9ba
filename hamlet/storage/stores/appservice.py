"""Application service transactions: per-service stream positions and the unacknowledged queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class PendingTxn:
    txn_id: int
    body: dict[str, Any]


class AppServiceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_position(self, as_id: str) -> tuple[int, int] | None:
        """(events stream position handled, last transaction ID), or None for a new service."""
        row = await self.db.fetchone(
            "get_appservice_position",
            "SELECT stream_ordering, last_txn_id FROM appservice_positions WHERE as_id = ?",
            as_id,
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def set_position(self, as_id: str, stream_ordering: int) -> None:
        await self.db.execute(
            "set_appservice_position",
            "INSERT INTO appservice_positions (as_id, stream_ordering, last_txn_id)"
            " VALUES (?, ?, 0) ON CONFLICT (as_id) DO UPDATE SET"
            " stream_ordering = excluded.stream_ordering",
            as_id,
            stream_ordering,
        )

    async def create_txn(self, as_id: str, stream_ordering: int, body: dict[str, Any]) -> int:
        """Queue a transaction and move the position past its events, atomically; its ID."""
        data = orjson.dumps(body).decode()

        async def run(txn: Transaction) -> int:
            last = await txn.fetchval(
                "SELECT last_txn_id FROM appservice_positions WHERE as_id = ?", (as_id,)
            )
            txn_id = int(last or 0) + 1
            await txn.execute(
                "INSERT INTO appservice_positions (as_id, stream_ordering, last_txn_id)"
                " VALUES (?, ?, ?) ON CONFLICT (as_id) DO UPDATE SET"
                " stream_ordering = excluded.stream_ordering, last_txn_id = excluded.last_txn_id",
                (as_id, stream_ordering, txn_id),
            )
            await txn.execute(
                "INSERT INTO appservice_txns (as_id, txn_id, body) VALUES (?, ?, ?)",
                (as_id, txn_id, data),
            )
            return txn_id

        return await self.db.run_interaction("create_appservice_txn", run)

    async def oldest_txn(self, as_id: str) -> PendingTxn | None:
        row = await self.db.fetchone(
            "get_oldest_appservice_txn",
            "SELECT txn_id, body FROM appservice_txns WHERE as_id = ? ORDER BY txn_id LIMIT 1",
            as_id,
        )
        return None if row is None else PendingTxn(int(row[0]), orjson.loads(row[1]))

    async def complete_txn(self, as_id: str, txn_id: int) -> None:
        await self.db.execute(
            "complete_appservice_txn",
            "DELETE FROM appservice_txns WHERE as_id = ? AND txn_id = ?",
            as_id,
            txn_id,
        )

    async def count_txns(self, as_id: str) -> int:
        return int(
            await self.db.fetchval(
                "count_appservice_txns",
                "SELECT COUNT(*) FROM appservice_txns WHERE as_id = ?",
                as_id,
            )
        )
