"""Per-user overrides of the message rate limit (Synapse's `ratelimit_override`)."""

from __future__ import annotations

from hamlet.storage.database import Database, Transaction


class RatelimitOverrideStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str) -> tuple[int, int] | None:
        """`(messages_per_second, burst_count)`, or None without an override."""
        row = await self.db.fetchone(
            "get_ratelimit_override",
            "SELECT messages_per_second, burst_count FROM ratelimit_override WHERE user_id = ?",
            user_id,
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def set(self, user_id: str, messages_per_second: int, burst_count: int) -> None:
        async def txn_fn(txn: Transaction) -> None:
            changed = await txn.execute(
                "UPDATE ratelimit_override SET messages_per_second = ?, burst_count = ?"
                " WHERE user_id = ?",
                (messages_per_second, burst_count, user_id),
            )
            if changed == 0:
                await txn.execute(
                    "INSERT INTO ratelimit_override (user_id, messages_per_second, burst_count)"
                    " VALUES (?, ?, ?)",
                    (user_id, messages_per_second, burst_count),
                )

        await self.db.run_interaction("set_ratelimit_override", txn_fn)

    async def delete(self, user_id: str) -> None:
        await self.db.execute(
            "delete_ratelimit_override",
            "DELETE FROM ratelimit_override WHERE user_id = ?",
            user_id,
        )
