"""Push rules: each user's own rules one row each, and their changes to the defaults.

Every write also stores the merged ruleset as the user's `m.push_rules`
account data, in the same transaction (one row, at a new stream id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from hamlet.core.push_rules import KINDS, UserPushRules
from hamlet.storage.database import Database, Transaction
from hamlet.storage.stores.account_data import put_account_data_txn

PUSH_RULES_TYPE: Final = "m.push_rules"
#: Key of a rule's priority in the rule dicts of `UserPushRules.custom`
#: this store reads and writes; the rest of the dict is the rule.
PRIORITY: Final = "priority"
#: Distance between neighbours' priorities when they are (re)numbered:
#: 32 insertions at one place halve it to nothing before a renumbering.
GAP: Final = 2**32


def priority_between(before: int | None, after: int | None) -> int | None:
    """A priority strictly between two neighbours' (None: no neighbour on
    that side), or None when they leave no room and need renumbering."""
    if before is None and after is None:
        return 0
    if before is None:
        assert after is not None
        return after - GAP
    if after is None:
        return before + GAP
    middle = (before + after) // 2
    return middle if before < middle < after else None


def renumbered(rules: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """(rule_id, priority) for `rules` in their order, evenly spaced."""
    return [(str(rule["rule_id"]), i * GAP) for i, rule in enumerate(rules)]


def _rule_json(rule: dict[str, Any]) -> str:
    return orjson.dumps({k: v for k, v in rule.items() if k not in ("rule_id", PRIORITY)}).decode()


class PushRulesStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str) -> UserPushRules:
        """The user's own rules (each with its `PRIORITY`) and changes to
        the defaults; empty if they never changed anything."""

        async def run(txn: Transaction) -> UserPushRules:
            await self._upgrade_document_txn(txn, user_id)
            out = UserPushRules()
            rows = await txn.fetchall(
                "SELECT kind, rule_id, priority, rule FROM push_rules"
                " WHERE user_id = ? ORDER BY kind, priority",
                (user_id,),
            )
            for kind, rule_id, priority, raw in rows:
                rule = {"rule_id": rule_id, **orjson.loads(raw), PRIORITY: priority}
                out.custom.setdefault(kind, []).append(rule)
            rows = await txn.fetchall(
                "SELECT kind, rule_id, changes FROM push_rules_default_changes WHERE user_id = ?",
                (user_id,),
            )
            for kind, rule_id, raw in rows:
                changes = orjson.loads(raw)
                key = f"{kind}/{rule_id}"
                if isinstance(changes.get("enabled"), bool):
                    out.enabled[key] = changes["enabled"]
                if isinstance(changes.get("actions"), list):
                    out.actions[key] = changes["actions"]
            return out

        return await self.db.run_interaction("get_push_rules", run)

    async def _upgrade_document_txn(self, txn: Transaction, user_id: str) -> None:
        """Move a document stored by schema 0006 into rows."""
        raw = await txn.fetchval("SELECT rules FROM push_rules_user WHERE user_id = ?", (user_id,))
        if raw is None:
            return
        old = UserPushRules.from_json(orjson.loads(raw))
        for kind in KINDS:
            rules = [r for r in old.custom.get(kind, []) if isinstance(r.get("rule_id"), str)]
            for rule, (_, priority) in zip(rules, renumbered(rules), strict=True):
                await self._put_rule_txn(txn, user_id, kind, {**rule, PRIORITY: priority})
        for key in old.enabled.keys() | old.actions.keys():
            kind, _, rule_id = key.partition("/")
            changes = {"enabled": old.enabled.get(key), "actions": old.actions.get(key)}
            await self._put_default_txn(txn, user_id, kind, rule_id, changes)
        await txn.execute("DELETE FROM push_rules_user WHERE user_id = ?", (user_id,))

    async def _put_rule_txn(
        self, txn: Transaction, user_id: str, kind: str, rule: dict[str, Any]
    ) -> None:
        await txn.execute(
            "INSERT INTO push_rules (user_id, kind, rule_id, priority, rule)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET"
            " priority = excluded.priority, rule = excluded.rule",
            (user_id, kind, rule["rule_id"], rule[PRIORITY], _rule_json(rule)),
        )

    async def _put_default_txn(
        self, txn: Transaction, user_id: str, kind: str, rule_id: str, changes: dict[str, Any]
    ) -> None:
        present = {k: v for k, v in changes.items() if v is not None}
        await txn.execute(
            "INSERT INTO push_rules_default_changes (user_id, kind, rule_id, changes)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET"
            " changes = excluded.changes",
            (user_id, kind, rule_id, orjson.dumps(present).decode()),
        )

    async def _write(
        self,
        desc: str,
        user_id: str,
        ruleset: dict[str, Any],
        stream_id: int,
        *statements: tuple[str, tuple[Any, ...]],
        rule: tuple[str, dict[str, Any]] | None = None,
        default: tuple[str, str, dict[str, Any]] | None = None,
    ) -> None:
        async def run(txn: Transaction) -> None:
            for sql, args in statements:
                await txn.execute(sql, args)
            if rule is not None:
                await self._put_rule_txn(txn, user_id, *rule)
            if default is not None:
                await self._put_default_txn(txn, user_id, *default)
            await put_account_data_txn(txn, user_id, None, PUSH_RULES_TYPE, ruleset, stream_id)

        await self.db.run_interaction(desc, run)

    async def put_rule(
        self,
        user_id: str,
        kind: str,
        rule: dict[str, Any],
        ruleset: dict[str, Any],
        stream_id: int,
        *,
        reorder: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Create or replace one rule (which carries its `PRIORITY`); with
        `reorder`, first give the user's rules of `kind` new priorities."""
        moves = tuple(
            (
                "UPDATE push_rules SET priority = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
                (priority, user_id, kind, rule_id),
            )
            for rule_id, priority in reorder
            if rule_id != rule["rule_id"]
        )
        await self._write("put_push_rule", user_id, ruleset, stream_id, *moves, rule=(kind, rule))

    async def delete_rule(
        self, user_id: str, kind: str, rule_id: str, ruleset: dict[str, Any], stream_id: int
    ) -> None:
        delete = (
            "DELETE FROM push_rules WHERE user_id = ? AND kind = ? AND rule_id = ?",
            (user_id, kind, rule_id),
        )
        await self._write("delete_push_rule", user_id, ruleset, stream_id, delete)

    async def put_default_changes(
        self,
        user_id: str,
        kind: str,
        rule_id: str,
        changes: dict[str, Any],
        ruleset: dict[str, Any],
        stream_id: int,
    ) -> None:
        """What the user changed of a server-default rule: `enabled` and/or
        `actions` (None: left as the default)."""
        await self._write(
            "put_push_rule_default", user_id, ruleset, stream_id, default=(kind, rule_id, changes)
        )
