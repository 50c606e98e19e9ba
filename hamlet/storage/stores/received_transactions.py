"""Answers to inbound federation transactions, per (origin, transaction ID)."""

from __future__ import annotations

from hamlet.storage.database import Database


class ReceivedTransactionsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_answer(self, origin: str, txn_id: str) -> str | None:
        """The answer given to this transaction (JSON text), if remembered."""
        answer = await self.db.fetchval(
            "get_received_transaction",
            "SELECT answer FROM received_transactions WHERE origin = ? AND txn_id = ?",
            origin,
            txn_id,
        )
        return None if answer is None else str(answer)

    async def set_answer(self, origin: str, txn_id: str, answer: str, now_ms: int) -> None:
        await self.db.execute(
            "set_received_transaction",
            "INSERT INTO received_transactions (origin, txn_id, answer, received_ts)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (origin, txn_id) DO NOTHING",
            origin,
            txn_id,
            answer,
            now_ms,
        )

    async def delete_older_than(self, before_ms: int) -> int:
        return await self.db.execute(
            "prune_received_transactions",
            "DELETE FROM received_transactions WHERE received_ts < ?",
            before_ms,
        )
