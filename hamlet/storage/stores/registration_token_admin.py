"""Listing, changing and deleting registration tokens (the admin side).

Creating and spending tokens lives in `registration_tokens.py`; this module
only adds what the admin API needs on the same table.
"""

from __future__ import annotations

from hamlet.storage.database import Database
from hamlet.storage.stores.registration_tokens import RegistrationToken

_COLUMNS = "token, uses_allowed, pending, completed, expiry_time"
_VALID = (
    "(uses_allowed IS NULL OR pending + completed < uses_allowed)"
    " AND (expiry_time IS NULL OR expiry_time > ?)"
)


def _token(row: tuple[object, ...]) -> RegistrationToken:
    return RegistrationToken(
        token=str(row[0]),
        uses_allowed=None if row[1] is None else int(row[1]),  # type: ignore[call-overload]
        pending=int(row[2]),  # type: ignore[call-overload]
        completed=int(row[3]),  # type: ignore[call-overload]
        expiry_time=None if row[4] is None else int(row[4]),  # type: ignore[call-overload]
    )


class RegistrationTokenAdminStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_tokens(self, *, valid: bool | None, now_ms: int) -> list[RegistrationToken]:
        if valid is None:
            rows = await self.db.fetchall(
                "list_registration_tokens",
                f"SELECT {_COLUMNS} FROM registration_tokens ORDER BY token",
            )
        else:
            condition = _VALID if valid else f"NOT ({_VALID})"
            rows = await self.db.fetchall(
                "list_registration_tokens",
                f"SELECT {_COLUMNS} FROM registration_tokens WHERE {condition} ORDER BY token",
                now_ms,
            )
        return [_token(r) for r in rows]

    async def update_token(self, token: str, changes: dict[str, int | None]) -> bool:
        """Set `uses_allowed` and/or `expiry_time`; False if there is no such token."""
        columns = [c for c in ("uses_allowed", "expiry_time") if c in changes]
        if not columns:
            found = await self.db.fetchval(
                "registration_token_exists",
                "SELECT 1 FROM registration_tokens WHERE token = ?",
                token,
            )
            return found is not None
        assignments = ", ".join(f"{c} = ?" for c in columns)
        changed = await self.db.execute(
            "update_registration_token",
            f"UPDATE registration_tokens SET {assignments} WHERE token = ?",
            *(changes[c] for c in columns),
            token,
        )
        return changed > 0

    async def delete_token(self, token: str) -> bool:
        changed = await self.db.execute(
            "delete_registration_token", "DELETE FROM registration_tokens WHERE token = ?", token
        )
        return changed > 0
