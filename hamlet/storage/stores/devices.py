"""Devices and the access tokens issued to them (stored only as hashes)."""

from __future__ import annotations

from dataclasses import dataclass

from hamlet.storage.database import Database, Transaction
from hamlet.storage.stores.e2e_keys import delete_device_keys_txn


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None
    last_seen_user_agent: str | None


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who an access token belongs to, with the user flags requests need."""

    user_id: str
    device_id: str | None
    is_guest: bool
    admin: bool
    shadow_banned: bool
    deactivated: bool
    locked: bool
    puppets_user_id: str | None
    token_created_ts: int
    # When the token stops working (an admin's login-as token), else None.
    valid_until_ms: int | None = None


_DEVICE_COLUMNS = (
    "user_id, device_id, display_name, last_seen_ts, last_seen_ip, last_seen_user_agent"
)


def _device(row: tuple[object, ...]) -> DeviceRecord:
    return DeviceRecord(
        user_id=str(row[0]),
        device_id=str(row[1]),
        display_name=None if row[2] is None else str(row[2]),
        last_seen_ts=None if row[3] is None else int(row[3]),  # type: ignore[call-overload]
        last_seen_ip=None if row[4] is None else str(row[4]),
        last_seen_user_agent=None if row[5] is None else str(row[5]),
    )


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Devices

    async def ensure_device(
        self, user_id: str, device_id: str, display_name: str | None, created_ts: int
    ) -> bool:
        """Create the device unless it exists; True if it was created."""

        async def txn_fn(txn: Transaction) -> bool:
            found = await txn.fetchval(
                "SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
            if found is not None:
                return False
            await txn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, created_ts)"
                " VALUES (?, ?, ?, ?)",
                (user_id, device_id, display_name, created_ts),
            )
            return True

        return await self.db.run_interaction("ensure_device", txn_fn)

    async def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        row = await self.db.fetchone(
            "get_device",
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? AND device_id = ?",
            user_id,
            device_id,
        )
        return None if row is None else _device(row)

    async def get_devices(self, user_id: str) -> list[DeviceRecord]:
        rows = await self.db.fetchall(
            "get_devices",
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE user_id = ? AND NOT hidden"
            " ORDER BY device_id",
            user_id,
        )
        return [_device(r) for r in rows]

    async def set_display_name(self, user_id: str, device_id: str, display_name: str) -> bool:
        changed = await self.db.execute(
            "set_device_display_name",
            "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?",
            display_name,
            user_id,
            device_id,
        )
        return changed == 1

    async def update_last_seen(
        self, user_id: str, device_id: str, ts: int, ip: str, user_agent: str | None
    ) -> None:
        await self.db.execute(
            "update_device_last_seen",
            "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?, last_seen_user_agent = ?"
            " WHERE user_id = ? AND device_id = ?",
            ts,
            ip,
            user_agent,
            user_id,
            device_id,
        )

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> list[str]:
        """Delete the devices and their tokens; returns the revoked token hashes."""

        async def txn_fn(txn: Transaction) -> list[str]:
            return await _delete_devices_txn(txn, user_id, device_ids)

        return await self.db.run_interaction("delete_devices", txn_fn)

    async def delete_least_recently_used(
        self, user_id: str, keep: str, max_devices: int
    ) -> tuple[list[str], list[str]]:
        """Delete the user's least recently used devices (never `keep`) until at
        most `max_devices` remain: (deleted device ids, revoked token hashes)."""

        async def txn_fn(txn: Transaction) -> tuple[list[str], list[str]]:
            count = int(
                await txn.fetchval("SELECT COUNT(*) FROM devices WHERE user_id = ?", (user_id,))
            )
            if count <= max_devices:
                return [], []
            rows = await txn.fetchall(
                "SELECT device_id FROM devices WHERE user_id = ? AND device_id <> ?"
                " ORDER BY COALESCE(last_seen_ts, created_ts), device_id LIMIT ?",
                (user_id, keep, count - max_devices),
            )
            device_ids = [str(r[0]) for r in rows]
            return device_ids, await _delete_devices_txn(txn, user_id, device_ids)

        return await self.db.run_interaction("delete_least_recently_used_devices", txn_fn)

    async def delete_all_devices(
        self, user_id: str, *, except_device_id: str | None = None
    ) -> list[str]:
        """Delete every device of the user (but one) and their tokens.

        Returns the revoked token hashes. Tokens without a device go too
        (unless a device is kept: then only device tokens are touched).
        """

        async def txn_fn(txn: Transaction) -> list[str]:
            devices = await txn.fetchall(
                "SELECT device_id FROM devices WHERE user_id = ?", (user_id,)
            )
            await delete_device_keys_txn(
                txn, user_id, [str(r[0]) for r in devices if r[0] != except_device_id]
            )
            if except_device_id is None:
                rows = await txn.fetchall(
                    "SELECT token_hash FROM access_tokens WHERE user_id = ?", (user_id,)
                )
                await txn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
                await txn.execute("DELETE FROM devices WHERE user_id = ?", (user_id,))
                await txn.execute("DELETE FROM pushers WHERE user_id = ?", (user_id,))
            else:
                rows = await txn.fetchall(
                    "SELECT token_hash FROM access_tokens WHERE user_id = ?"
                    " AND (device_id IS NULL OR device_id <> ?)",
                    (user_id, except_device_id),
                )
                await txn.execute(
                    "DELETE FROM access_tokens WHERE user_id = ?"
                    " AND (device_id IS NULL OR device_id <> ?)",
                    (user_id, except_device_id),
                )
                await txn.execute(
                    "DELETE FROM devices WHERE user_id = ? AND device_id <> ?",
                    (user_id, except_device_id),
                )
                await txn.execute(
                    "DELETE FROM pushers WHERE user_id = ? AND device_id <> ?",
                    (user_id, except_device_id),
                )
            return [str(r[0]) for r in rows]

        return await self.db.run_interaction("delete_all_devices", txn_fn)

    # Access tokens

    async def add_access_token(
        self,
        token_hash: str,
        user_id: str,
        device_id: str | None,
        created_ts: int,
        puppets_user_id: str | None = None,
        valid_until_ms: int | None = None,
    ) -> None:
        """Store a token; one with `valid_until_ms` gets its expiry in the same transaction,
        so no lookup ever sees it without one."""

        async def txn_fn(txn: Transaction) -> None:
            await txn.execute(
                "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts,"
                " last_used_ts, puppets_user_id) VALUES (?, ?, ?, ?, NULL, ?)",
                (token_hash, user_id, device_id, created_ts, puppets_user_id),
            )
            if valid_until_ms is not None:
                await txn.execute(
                    "INSERT INTO access_token_expiry (token_hash, valid_until_ms) VALUES (?, ?)",
                    (token_hash, valid_until_ms),
                )

        await self.db.run_interaction("add_access_token", txn_fn)

    async def get_token_owner(self, token_hash: str) -> TokenOwner | None:
        row = await self.db.fetchone(
            "get_token_owner",
            "SELECT t.user_id, t.device_id, u.is_guest, u.admin, u.shadow_banned,"
            " u.deactivated, u.locked, t.puppets_user_id, t.created_ts, e.valid_until_ms"
            " FROM access_tokens AS t JOIN users AS u ON u.user_id = t.user_id"
            " LEFT JOIN access_token_expiry AS e ON e.token_hash = t.token_hash"
            " WHERE t.token_hash = ?",
            token_hash,
        )
        if row is None:
            return None
        return TokenOwner(
            user_id=str(row[0]),
            device_id=None if row[1] is None else str(row[1]),
            is_guest=bool(row[2]),
            admin=bool(row[3]),
            shadow_banned=bool(row[4]),
            deactivated=bool(row[5]),
            locked=bool(row[6]),
            puppets_user_id=None if row[7] is None else str(row[7]),
            token_created_ts=int(row[8]),
            valid_until_ms=None if row[9] is None else int(row[9]),
        )

    async def delete_access_token(self, token_hash: str) -> None:
        await self.db.execute(
            "delete_access_token", "DELETE FROM access_tokens WHERE token_hash = ?", token_hash
        )


async def _delete_devices_txn(txn: Transaction, user_id: str, device_ids: list[str]) -> list[str]:
    """Delete the devices, their tokens and keys; returns the revoked token hashes."""
    hashes: list[str] = []
    for device_id in device_ids:
        rows = await txn.fetchall(
            "SELECT token_hash FROM access_tokens WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        )
        hashes.extend(str(r[0]) for r in rows)
        await txn.execute(
            "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        )
        await txn.execute(
            "DELETE FROM devices WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        )
        # A device's pushers go with it (as Synapse): a logged-out phone stops ringing.
        await txn.execute(
            "DELETE FROM pushers WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        )
    await delete_device_keys_txn(txn, user_id, device_ids)
    return hashes
