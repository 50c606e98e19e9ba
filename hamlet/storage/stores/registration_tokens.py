"""Registration tokens: who may sign up, and how often each token may be used.

A use is *reserved* (`pending + 1`) when a registration's UIA stage accepts
the token, and either *completed* (`pending - 1, completed + 1`) in the same
transaction that creates the account, or *released* (`pending - 1`) when
the UIA session is abandoned. The reservation is a single conditional
UPDATE, so concurrent registrations can never reserve more uses than
`uses_allowed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hamlet.storage.database import Database, Transaction
from hamlet.storage.errors import IntegrityError


@dataclass(frozen=True, slots=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None
    pending: int
    completed: int
    expiry_time: int | None


async def complete_token_use(txn: Transaction, token: str) -> bool:
    """Turn one reserved use into a completed one; False if none was reserved."""
    changed = await txn.execute(
        "UPDATE registration_tokens SET pending = pending - 1, completed = completed + 1"
        " WHERE token = ? AND pending > 0",
        (token,),
    )
    return changed == 1


class RegistrationTokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_token(
        self, token: str, *, uses_allowed: int | None, expiry_time: int | None
    ) -> bool:
        """Add a token; False if it already exists."""
        try:
            await self.db.execute(
                "create_registration_token",
                "INSERT INTO registration_tokens (token, uses_allowed, pending, completed,"
                " expiry_time) VALUES (?, ?, 0, 0, ?)",
                token,
                uses_allowed,
                expiry_time,
            )
        except IntegrityError:
            return False
        return True

    async def get_token(self, token: str) -> RegistrationToken | None:
        row = await self.db.fetchone(
            "get_registration_token",
            "SELECT token, uses_allowed, pending, completed, expiry_time"
            " FROM registration_tokens WHERE token = ?",
            token,
        )
        if row is None:
            return None
        return RegistrationToken(
            token=str(row[0]),
            uses_allowed=None if row[1] is None else int(row[1]),
            pending=int(row[2]),
            completed=int(row[3]),
            expiry_time=None if row[4] is None else int(row[4]),
        )

    async def is_valid(self, token: str, now_ms: int) -> bool:
        """Could the token be used now (not a promise that it will be)?"""
        found = await self.db.fetchval(
            "registration_token_is_valid",
            "SELECT 1 FROM registration_tokens WHERE token = ?"
            " AND (uses_allowed IS NULL OR pending + completed < uses_allowed)"
            " AND (expiry_time IS NULL OR expiry_time > ?)",
            token,
            now_ms,
        )
        return found is not None

    async def reserve_use(self, token: str, now_ms: int) -> bool:
        """Atomically reserve one use of a valid token; False if it is not valid."""
        changed = await self.db.execute(
            "reserve_registration_token",
            "UPDATE registration_tokens SET pending = pending + 1 WHERE token = ?"
            " AND (uses_allowed IS NULL OR pending + completed < uses_allowed)"
            " AND (expiry_time IS NULL OR expiry_time > ?)",
            token,
            now_ms,
        )
        return changed == 1

    async def release_use(self, token: str) -> None:
        """Give back a reserved use whose registration never completed."""
        await self.db.execute(
            "release_registration_token",
            "UPDATE registration_tokens SET pending = pending - 1 WHERE token = ? AND pending > 0",
            token,
        )
