"""Cached device lists of remote users: their devices' keys, their
cross-signing keys, and their server's device list position."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hamlet.storage.database import Database, Transaction


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass(slots=True)
class RemoteDeviceList:
    user_id: str
    #: The remote server's position; None when it is not known.
    stream_id: int | None
    #: device id -> its keys (None: the device has uploaded none).
    devices: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    #: key type (master, self_signing) -> key.
    cross_signing: dict[str, dict[str, Any]] = field(default_factory=dict)


class RemoteDevicesStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_lists(self, user_ids: Collection[str]) -> dict[str, RemoteDeviceList]:
        """The cached lists of those users that have one."""

        async def run(txn: Transaction) -> dict[str, RemoteDeviceList]:
            out: dict[str, RemoteDeviceList] = {}
            for user_id in user_ids:
                row = await txn.fetchone(
                    "SELECT stream_id FROM remote_device_lists WHERE user_id = ?", (user_id,)
                )
                if row is None:
                    continue
                found = RemoteDeviceList(user_id, None if row[0] is None else int(row[0]))
                for device_id, key_json in await txn.fetchall(
                    "SELECT device_id, key_json FROM remote_device_keys WHERE user_id = ?",
                    (user_id,),
                ):
                    found.devices[str(device_id)] = (
                        None if key_json is None else orjson.loads(key_json)
                    )
                for key_type, key_json in await txn.fetchall(
                    "SELECT key_type, key_json FROM remote_cross_signing_keys WHERE user_id = ?",
                    (user_id,),
                ):
                    found.cross_signing[str(key_type)] = orjson.loads(key_json)
                out[user_id] = found
            return out

        return await self.db.run_interaction("get_remote_device_lists", run)

    async def get_stream_id(self, user_id: str) -> tuple[bool, int | None]:
        """(whether the user's list is cached, its position)."""
        row = await self.db.fetchone(
            "get_remote_device_list_position",
            "SELECT stream_id FROM remote_device_lists WHERE user_id = ?",
            user_id,
        )
        if row is None:
            return False, None
        return True, None if row[0] is None else int(row[0])

    async def replace_list(self, found: RemoteDeviceList, ts: int) -> None:
        """Cache a whole list (a resync or a query's answer) in place of the old."""

        async def run(txn: Transaction) -> None:
            await _forget(txn, found.user_id)
            await txn.execute(
                "INSERT INTO remote_device_lists (user_id, stream_id, ts) VALUES (?, ?, ?)",
                (found.user_id, found.stream_id, ts),
            )
            if found.devices:
                await txn.executemany(
                    "INSERT INTO remote_device_keys (user_id, device_id, key_json)"
                    " VALUES (?, ?, ?)",
                    [
                        (found.user_id, d, None if k is None else _dumps(k))
                        for d, k in found.devices.items()
                    ],
                )
            await _set_cross_signing(txn, found.user_id, found.cross_signing)

        await self.db.run_interaction("replace_remote_device_list", run)

    async def update_device(
        self,
        user_id: str,
        device_id: str,
        keys: Mapping[str, Any] | None,
        deleted: bool,
        stream_id: int,
        ts: int,
    ) -> None:
        """Apply one `m.device_list_update` to a cached list."""

        async def run(txn: Transaction) -> None:
            await txn.execute(
                "DELETE FROM remote_device_keys WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            if not deleted:
                await txn.execute(
                    "INSERT INTO remote_device_keys (user_id, device_id, key_json)"
                    " VALUES (?, ?, ?)",
                    (user_id, device_id, None if keys is None else _dumps(keys)),
                )
            await txn.execute(
                "UPDATE remote_device_lists SET stream_id = ?, ts = ? WHERE user_id = ?",
                (stream_id, ts, user_id),
            )

        await self.db.run_interaction("update_remote_device", run)

    async def set_cross_signing(self, user_id: str, keys: Mapping[str, Mapping[str, Any]]) -> None:
        """Apply an `m.signing_key_update` to a cached list."""
        await self.db.run_interaction(
            "set_remote_cross_signing_keys", lambda txn: _set_cross_signing(txn, user_id, keys)
        )

    async def forget(self, user_id: str) -> None:
        await self.db.run_interaction("forget_remote_device_list", lambda t: _forget(t, user_id))

    async def forget_unshared(self, server_name: str) -> int:
        """Drop the lists of users no user of `server_name` shares a room with
        any more (their server stopped telling us of changes); how many."""
        escaped = server_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

        async def run(txn: Transaction) -> int:
            rows = await txn.fetchall(
                "SELECT user_id FROM remote_device_lists WHERE user_id NOT IN ("
                " SELECT other.user_id FROM room_memberships AS other"
                " JOIN room_memberships AS mine ON mine.room_id = other.room_id"
                " WHERE other.membership = 'join' AND mine.membership = 'join'"
                " AND mine.user_id LIKE ? ESCAPE '\\')",
                (f"%:{escaped}",),
            )
            for (user_id,) in rows:
                await _forget(txn, str(user_id))
            return len(rows)

        return await self.db.run_interaction("forget_unshared_remote_device_lists", run)


async def _forget(txn: Transaction, user_id: str) -> None:
    for table in ("remote_device_lists", "remote_device_keys", "remote_cross_signing_keys"):
        await txn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))


async def _set_cross_signing(
    txn: Transaction, user_id: str, keys: Mapping[str, Mapping[str, Any]]
) -> None:
    for key_type, key in keys.items():
        await txn.execute(
            "DELETE FROM remote_cross_signing_keys WHERE user_id = ? AND key_type = ?",
            (user_id, key_type),
        )
        await txn.execute(
            "INSERT INTO remote_cross_signing_keys (user_id, key_type, key_json) VALUES (?, ?, ?)",
            (user_id, key_type, _dumps(key)),
        )
