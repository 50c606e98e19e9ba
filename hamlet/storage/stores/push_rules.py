"""Push rules: each user's changes to the default rules, one JSON document per user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction
from hamlet.storage.stores.account_data import put_account_data_txn

PUSH_RULES_TYPE = "m.push_rules"


class PushRulesStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str) -> Any | None:
        """The user's stored changes (JSON), or None if they never changed anything."""
        raw = await self.db.fetchval(
            "get_push_rules",
            "SELECT rules FROM push_rules_user WHERE user_id = ?",
            user_id,
        )
        return None if raw is None else orjson.loads(raw)

    async def update(
        self,
        user_id: str,
        change: Callable[[Any | None], tuple[Any, dict[str, Any]]],
        stream_id: int,
    ) -> tuple[Any, dict[str, Any]]:
        """Read-modify-write in one transaction. `change(old)` returns the new
        stored document and the full ruleset, which becomes the user's
        `m.push_rules` account data at `stream_id`. If `change` raises,
        nothing is written."""

        async def run(txn: Transaction) -> tuple[Any, dict[str, Any]]:
            raw = await txn.fetchval(
                "SELECT rules FROM push_rules_user WHERE user_id = ?", (user_id,)
            )
            new, ruleset = change(None if raw is None else orjson.loads(raw))
            await txn.execute(
                "INSERT INTO push_rules_user (user_id, rules) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET rules = excluded.rules",
                (user_id, orjson.dumps(new).decode()),
            )
            await put_account_data_txn(txn, user_id, None, PUSH_RULES_TYPE, ruleset, stream_id)
            return new, ruleset

        return await self.db.run_interaction("update_push_rules", run)
