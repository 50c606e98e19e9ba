"""Client filters, numbered per user from 0."""

from __future__ import annotations

from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction
from hamlet.storage.errors import IntegrityError

_ATTEMPTS = 5


class FilterStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_filter(self, user_id: str, definition: Any) -> int:
        raw = orjson.dumps(definition).decode()

        async def run(txn: Transaction) -> int:
            top = await txn.fetchval(
                "SELECT MAX(filter_id) FROM user_filters WHERE user_id = ?", (user_id,)
            )
            filter_id = 0 if top is None else int(top) + 1
            await txn.execute(
                "INSERT INTO user_filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)",
                (user_id, filter_id, raw),
            )
            return filter_id

        for attempt in range(_ATTEMPTS):
            try:
                return await self.db.run_interaction("add_user_filter", run)
            except IntegrityError:
                # A concurrent insert took the same id; try the next one.
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def get_filter(self, user_id: str, filter_id: int) -> Any | None:
        raw = await self.db.fetchval(
            "get_user_filter",
            "SELECT filter_json FROM user_filters WHERE user_id = ? AND filter_id = ?",
            user_id,
            filter_id,
        )
        return None if raw is None else orjson.loads(raw)
