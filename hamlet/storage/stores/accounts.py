"""Users and their profiles."""

from __future__ import annotations

from dataclasses import dataclass

from hamlet.storage.database import Database, Transaction
from hamlet.storage.errors import IntegrityError
from hamlet.storage.stores.registration_tokens import complete_token_use

_USER_COLUMNS = (
    "user_id, password_hash, created_ts, admin, deactivated, is_guest, shadow_banned, locked,"
    " user_type"
)


@dataclass(frozen=True, slots=True)
class UserRecord:
    user_id: str
    password_hash: str | None
    created_ts: int
    admin: bool
    deactivated: bool
    is_guest: bool
    shadow_banned: bool
    locked: bool
    user_type: str | None


def _user(row: tuple[object, ...]) -> UserRecord:
    return UserRecord(
        user_id=str(row[0]),
        password_hash=None if row[1] is None else str(row[1]),
        created_ts=int(row[2]),  # type: ignore[call-overload]
        admin=bool(row[3]),
        deactivated=bool(row[4]),
        is_guest=bool(row[5]),
        shadow_banned=bool(row[6]),
        locked=bool(row[7]),
        user_type=None if row[8] is None else str(row[8]),
    )


class UserInUseError(Exception):
    """The user ID is already taken."""


class RegistrationTokenUnavailableError(Exception):
    """The registration token reserved for this registration cannot be completed."""


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_user(
        self,
        user_id: str,
        *,
        password_hash: str | None,
        created_ts: int,
        admin: bool = False,
        is_guest: bool = False,
        user_type: str | None = None,
        displayname: str | None = None,
        registration_token: str | None = None,
    ) -> None:
        """Insert the user and its profile in one transaction.

        With `registration_token`, one reserved (pending) use of the token is
        turned into a completed one in the same transaction, so a token is
        spent exactly when an account is created with it.

        Raises `UserInUseError` if the ID is taken.
        """

        async def txn_fn(txn: Transaction) -> None:
            existing = await txn.fetchval("SELECT 1 FROM users WHERE user_id = ?", (user_id,))
            if existing is not None:
                raise UserInUseError(user_id)
            await txn.execute(
                "INSERT INTO users (user_id, password_hash, created_ts, admin, deactivated,"
                " is_guest, shadow_banned, locked, user_type)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    password_hash,
                    created_ts,
                    admin,
                    False,
                    is_guest,
                    False,
                    False,
                    user_type,
                ),
            )
            await txn.execute(
                "INSERT INTO profiles (user_id, displayname, avatar_url) VALUES (?, ?, NULL)",
                (user_id, displayname),
            )
            if registration_token is not None and not await complete_token_use(
                txn, registration_token
            ):
                raise RegistrationTokenUnavailableError(registration_token)

        try:
            await self.db.run_interaction("create_user", txn_fn)
        except IntegrityError as e:
            # Lost a race with a concurrent registration of the same ID.
            raise UserInUseError(user_id) from e

    async def get_user(self, user_id: str) -> UserRecord | None:
        row = await self.db.fetchone(
            "get_user", f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = ?", user_id
        )
        return None if row is None else _user(row)

    async def get_users_case_insensitive(self, user_id: str) -> list[UserRecord]:
        rows = await self.db.fetchall(
            "get_users_case_insensitive",
            f"SELECT {_USER_COLUMNS} FROM users WHERE LOWER(user_id) = LOWER(?)",
            user_id,
        )
        return [_user(r) for r in rows]

    async def user_exists(self, user_id: str) -> bool:
        found = await self.db.fetchval(
            "user_exists", "SELECT 1 FROM users WHERE user_id = ?", user_id
        )
        return found is not None

    async def count_users(self) -> int:
        return int(await self.db.fetchval("count_users", "SELECT COUNT(*) FROM users") or 0)

    async def numeric_user_ids(self) -> list[str]:
        """IDs whose localpart starts with a digit (`0`-`9` sort between `0` and `:`)."""
        rows = await self.db.fetchall(
            "numeric_user_ids",
            "SELECT user_id FROM users WHERE user_id >= '@0' AND user_id < '@:'",
        )
        return [str(r[0]) for r in rows]

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        await self.db.execute(
            "set_password_hash",
            "UPDATE users SET password_hash = ? WHERE user_id = ?",
            password_hash,
            user_id,
        )

    async def set_deactivated(self, user_id: str, deactivated: bool) -> None:
        await self.db.execute(
            "set_deactivated",
            "UPDATE users SET deactivated = ? WHERE user_id = ?",
            deactivated,
            user_id,
        )

    async def set_admin(self, user_id: str, admin: bool) -> None:
        await self.db.execute(
            "set_admin", "UPDATE users SET admin = ? WHERE user_id = ?", admin, user_id
        )

    async def get_displayname(self, user_id: str) -> str | None:
        value = await self.db.fetchval(
            "get_displayname", "SELECT displayname FROM profiles WHERE user_id = ?", user_id
        )
        return None if value is None else str(value)
