"""Remote servers' signing keys and the key responses they came in."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from hamlet.core.canonical_json import JsonDict
from hamlet.core.server_keys import ServerKeys
from hamlet.storage.database import Database, Transaction

#: Keys kept per server. Old keys pile up as a server rotates; beyond this
#: the least valid go, so a server minting key IDs cannot grow our tables.
MAX_KEYS_PER_SERVER = 64


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    key_base64: str
    valid_until_ts: int
    expired_ts: int | None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    from_server: str
    added_ts: int
    valid_until_ts: int
    response: JsonDict


class ServerKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def store_keys(self, keys: ServerKeys, from_server: str, added_ts: int) -> None:
        """Record a checked response and the keys in it, in one transaction."""
        raw = orjson.dumps(keys.response).decode()
        rows = [
            (
                keys.server_name,
                k.key_id,
                k.key_base64,
                added_ts,
                k.valid_until_ts,
                k.expired_ts,
            )
            for k in keys.keys.values()
        ]

        async def run(txn: Transaction) -> None:
            await txn.execute(
                "INSERT INTO server_keys_json"
                " (server_name, from_server, ts_added_ms, ts_valid_until_ms, key_json)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (server_name) DO UPDATE SET"
                " from_server = excluded.from_server, ts_added_ms = excluded.ts_added_ms,"
                " ts_valid_until_ms = excluded.ts_valid_until_ms, key_json = excluded.key_json",
                (keys.server_name, from_server, added_ts, keys.valid_until_ts, raw),
            )
            await txn.executemany(
                "INSERT INTO server_signature_keys"
                " (server_name, key_id, verify_key, ts_added_ms, ts_valid_until_ms, expired_ts)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (server_name, key_id) DO UPDATE SET"
                " verify_key = excluded.verify_key, ts_added_ms = excluded.ts_added_ms,"
                " ts_valid_until_ms = excluded.ts_valid_until_ms,"
                " expired_ts = excluded.expired_ts",
                rows,
            )
            await txn.execute(
                "DELETE FROM server_signature_keys WHERE server_name = ? AND key_id NOT IN"
                " (SELECT key_id FROM server_signature_keys WHERE server_name = ?"
                " ORDER BY ts_valid_until_ms DESC, key_id LIMIT ?)",
                (keys.server_name, keys.server_name, MAX_KEYS_PER_SERVER),
            )

        await self.db.run_interaction("store_server_keys", run)

    async def get_keys(self, server_name: str) -> list[StoredKey]:
        rows = await self.db.fetchall(
            "get_server_signature_keys",
            "SELECT key_id, verify_key, ts_valid_until_ms, expired_ts"
            " FROM server_signature_keys WHERE server_name = ?",
            server_name,
        )
        return [StoredKey(str(r[0]), str(r[1]), int(r[2]), _opt_int(r[3])) for r in rows]

    async def get_response(self, server_name: str) -> StoredResponse | None:
        row = await self.db.fetchone(
            "get_server_keys_json",
            "SELECT from_server, ts_added_ms, ts_valid_until_ms, key_json"
            " FROM server_keys_json WHERE server_name = ?",
            server_name,
        )
        if row is None:
            return None
        return StoredResponse(str(row[0]), int(row[1]), int(row[2]), orjson.loads(row[3]))


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))
