"""What the admin API reads and writes about users beyond the accounts store.

Listing with filters, ordering and offsets; the full record of one user;
the flags only an admin sets (shadow-ban, lock, user type); erasure; and
access tokens that expire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hamlet.storage.database import Database, Transaction

# order_by value -> column of the listing query (all aliases of `_LISTING`).
ORDER_COLUMNS: Final = {
    "name": "name",
    "is_guest": "is_guest",
    "admin": "admin",
    "user_type": "user_type",
    "deactivated": "deactivated",
    "shadow_banned": "shadow_banned",
    "displayname": "displayname",
    "avatar_url": "avatar_url",
    "creation_ts": "creation_ts",
    "last_seen_ts": "last_seen_ts",
    "locked": "locked",
    "approved": "approved",
}

_FLAG_COLUMNS: Final = frozenset({"admin", "deactivated", "shadow_banned", "locked", "user_type"})

# One row per user with every field the admin API shows, so the outer
# query can filter and order on the aliases (PostgreSQL does not allow
# expressions over output aliases in ORDER BY).
_LISTING: Final = (
    "SELECT u.user_id AS name, u.user_type AS user_type, u.is_guest AS is_guest,"
    " u.admin AS admin, u.deactivated AS deactivated, u.shadow_banned AS shadow_banned,"
    " p.displayname AS displayname, p.avatar_url AS avatar_url,"
    " u.created_ts AS creation_ts, u.locked AS locked, u.approved AS approved,"
    " e.user_id AS erased_id, u.appservice_id AS appservice_id,"
    " u.consent_version AS consent_version,"
    " (SELECT MAX(d.last_seen_ts) FROM devices AS d WHERE d.user_id = u.user_id)"
    " AS last_seen_ts"
    " FROM users AS u"
    " LEFT JOIN profiles AS p ON p.user_id = u.user_id"
    " LEFT JOIN erased_users AS e ON e.user_id = u.user_id"
)
_FIELDS: Final = (
    "name, user_type, is_guest, admin, deactivated, shadow_banned, displayname, avatar_url,"
    " creation_ts, locked, approved, erased_id, appservice_id, consent_version, last_seen_ts"
)


@dataclass(frozen=True, slots=True)
class AdminUserRow:
    name: str
    user_type: str | None
    is_guest: bool
    admin: bool
    deactivated: bool
    shadow_banned: bool
    displayname: str | None
    avatar_url: str | None
    creation_ts: int
    locked: bool
    approved: bool
    erased: bool
    appservice_id: str | None
    consent_version: str | None
    last_seen_ts: int | None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _row(row: Sequence[Any]) -> AdminUserRow:
    return AdminUserRow(
        name=str(row[0]),
        user_type=_opt_str(row[1]),
        is_guest=bool(row[2]),
        admin=bool(row[3]),
        deactivated=bool(row[4]),
        shadow_banned=bool(row[5]),
        displayname=_opt_str(row[6]),
        avatar_url=_opt_str(row[7]),
        creation_ts=int(row[8]),
        locked=bool(row[9]),
        approved=bool(row[10]),
        erased=row[11] is not None,
        appservice_id=_opt_str(row[12]),
        consent_version=_opt_str(row[13]),
        last_seen_ts=_opt_int(row[14]),
    )


def like_pattern(text: str) -> str:
    """`%text%` for `LIKE ... ESCAPE '\\'`, with the wildcards in `text` escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class UserListQuery:
    """Filters of the users listing; None means "don't filter on this"."""

    name: str | None = None
    user_id: str | None = None
    guests: bool | None = None
    deactivated: bool | None = None
    admins: bool | None = None
    locked: bool | None = None
    not_user_types: tuple[str, ...] = ()
    order_by: str = "name"
    direction: str = "f"


class AdminUserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_users(
        self, query: UserListQuery, start: int, limit: int
    ) -> tuple[list[AdminUserRow], int]:
        """One page of users and how many match in all."""
        where: list[str] = []
        args: list[Any] = []
        if query.name is not None:
            where.append(
                "(LOWER(name) LIKE LOWER(?) ESCAPE '\\'"
                " OR LOWER(displayname) LIKE LOWER(?) ESCAPE '\\')"
            )
            args += [like_pattern(query.name)] * 2
        elif query.user_id is not None:
            where.append("LOWER(name) LIKE LOWER(?) ESCAPE '\\'")
            args.append(like_pattern(query.user_id))
        for column, value in (
            ("is_guest", query.guests),
            ("deactivated", query.deactivated),
            ("admin", query.admins),
            ("locked", query.locked),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        named_types = [t for t in query.not_user_types if t]
        if named_types:
            marks = ",".join("?" * len(named_types))
            where.append(f"(user_type IS NULL OR user_type NOT IN ({marks}))")
            args += named_types
        if "" in query.not_user_types:
            where.append("user_type IS NOT NULL")
        column = ORDER_COLUMNS[query.order_by]
        direction = "DESC" if query.direction == "b" else "ASC"
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        # Missing values sort after present ones going forwards (the same on
        # both engines); ties are broken by ascending name, as Synapse does.
        order = (
            f" ORDER BY CASE WHEN {column} IS NULL THEN 1 ELSE 0 END {direction},"
            f" {column} {direction}"
        )
        if column != "name":
            order += ", name ASC"

        async def txn_fn(txn: Transaction) -> tuple[list[AdminUserRow], int]:
            total = await txn.fetchval(
                f"SELECT COUNT(*) FROM ({_LISTING}) AS x{clause}", tuple(args)
            )
            rows = await txn.fetchall(
                f"SELECT {_FIELDS} FROM ({_LISTING}) AS x{clause}{order} LIMIT ? OFFSET ?",
                (*args, limit, start),
            )
            return [_row(r) for r in rows], int(total or 0)

        return await self.db.run_interaction("admin_list_users", txn_fn)

    async def get_user(self, user_id: str) -> AdminUserRow | None:
        row = await self.db.fetchone(
            "admin_get_user",
            f"SELECT {_FIELDS} FROM ({_LISTING}) AS x WHERE name = ?",
            user_id,
        )
        return None if row is None else _row(row)

    async def set_flag(self, user_id: str, column: str, value: object) -> None:
        if column not in _FLAG_COLUMNS:
            raise ValueError(column)
        await self.db.execute(
            f"admin_set_{column}",
            f"UPDATE users SET {column} = ? WHERE user_id = ?",
            value,
            user_id,
        )

    async def mark_erased(self, user_id: str) -> None:
        async def txn_fn(txn: Transaction) -> None:
            found = await txn.fetchval("SELECT 1 FROM erased_users WHERE user_id = ?", (user_id,))
            if found is None:
                await txn.execute("INSERT INTO erased_users (user_id) VALUES (?)", (user_id,))

        await self.db.run_interaction("mark_user_erased", txn_fn)

    async def unmark_erased(self, user_id: str) -> None:
        await self.db.execute(
            "unmark_user_erased", "DELETE FROM erased_users WHERE user_id = ?", user_id
        )

    # Access tokens that expire

    async def delete_expired_tokens(self, before_ms: int) -> list[str]:
        """Delete every access token that expired at or before `before_ms`; returns their hashes."""

        async def txn_fn(txn: Transaction) -> list[str]:
            rows = await txn.fetchall(
                "SELECT token_hash FROM access_token_expiry WHERE valid_until_ms <= ?", (before_ms,)
            )
            hashes = [str(r[0]) for r in rows]
            for token_hash in hashes:
                await txn.execute("DELETE FROM access_tokens WHERE token_hash = ?", (token_hash,))
                await txn.execute(
                    "DELETE FROM access_token_expiry WHERE token_hash = ?", (token_hash,)
                )
            return hashes

        return await self.db.run_interaction("delete_expired_tokens", txn_fn)
