"""Per-user display names and avatars."""

from __future__ import annotations

from hamlet.storage.database import Database


class ProfilesStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_profile(self, user_id: str) -> tuple[str | None, str | None] | None:
        row = await self.db.fetchone(
            "get_profile", "SELECT displayname, avatar_url FROM profiles WHERE user_id = ?", user_id
        )
        return (row[0], row[1]) if row is not None else None

    async def set_field(self, user_id: str, field: str, value: str | None) -> None:
        if field not in ("displayname", "avatar_url"):
            raise ValueError(field)
        await self.db.execute(
            "set_profile_field",
            f"INSERT INTO profiles (user_id, {field}) VALUES (?, ?)"
            f" ON CONFLICT (user_id) DO UPDATE SET {field} = excluded.{field}",
            user_id,
            value,
        )
