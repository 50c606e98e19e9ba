"""User directory search and the room counts the public room list shows.

There is no separate index table: a tenant's users, profiles and
memberships are small enough to search directly, and membership lookups
go through the `room_memberships` indexes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from hamlet.storage.database import Database

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    user_id: str
    displayname: str | None
    avatar_url: str | None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UserDirectoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(self, words: Sequence[str], limit: int) -> list[DirectoryEntry]:
        """Active users where every word prefixes the localpart or a display-name word."""
        clauses = ["u.deactivated = ?"]
        args: list[Any] = [False]
        for word in words:
            w = _like_escape(word.lower())
            clauses.append(
                "(LOWER(u.user_id) LIKE ? ESCAPE '\\' OR LOWER(p.displayname) LIKE ? ESCAPE '\\'"
                " OR LOWER(p.displayname) LIKE ? ESCAPE '\\')"
            )
            args.extend([f"@{w}%", f"{w}%", f"% {w}%"])
        rows = await self.db.fetchall(
            "user_directory_search",
            "SELECT u.user_id, p.displayname, p.avatar_url FROM users u"
            " LEFT JOIN profiles p ON p.user_id = u.user_id"
            f" WHERE {' AND '.join(clauses)} ORDER BY u.user_id LIMIT ?",
            *args,
            limit,
        )
        return [DirectoryEntry(str(r[0]), r[1], r[2]) for r in rows]

    async def get_joined_rooms(self, user_ids: Collection[str]) -> dict[str, set[str]]:
        """user_id -> the rooms each of `user_ids` is joined to."""
        out: dict[str, set[str]] = {}
        ids = list(user_ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self.db.fetchall(
                "user_directory_joined_rooms",
                "SELECT user_id, room_id FROM room_memberships"
                f" WHERE user_id IN ({','.join('?' * len(chunk))}) AND membership = ?",
                *chunk,
                "join",
            )
            for r in rows:
                out.setdefault(str(r[0]), set()).add(str(r[1]))
        return out

    async def count_joined_members(self, room_ids: Collection[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        ids = list(room_ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self.db.fetchall(
                "count_joined_members",
                "SELECT room_id, COUNT(*) FROM room_memberships"
                f" WHERE room_id IN ({','.join('?' * len(chunk))}) AND membership = ?"
                " GROUP BY room_id",
                *chunk,
                "join",
            )
            out.update({str(r[0]): int(r[1]) for r in rows})
        return out
