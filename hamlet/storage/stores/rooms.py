"""Rooms, current state, memberships and aliases."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson

from hamlet.storage.database import Database, Row
from hamlet.storage.errors import IntegrityError
from hamlet.storage.stores.receipts import chunks


@dataclass(frozen=True, slots=True)
class RoomRow:
    room_id: str
    room_version: str
    creator: str
    room_type: str | None
    is_public: bool
    created_ts: int
    blocked: bool


@dataclass(frozen=True, slots=True)
class Membership:
    room_id: str
    user_id: str
    membership: str
    event_id: str
    stream_ordering: int
    forgotten: bool


_MEMBERSHIP_COLUMNS = "room_id, user_id, membership, event_id, stream_ordering, forgotten"


def _membership(row: Row) -> Membership:
    return Membership(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        int(row[4]),
        bool(row[5]),
    )


class RoomsStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Bumped after each write to memberships that no event announces
        # (forgetting a room, a purge): caches of memberships check it.
        self.rewrites = 0

    def memberships_rewritten(self) -> None:
        self.rewrites += 1

    async def get_room(self, room_id: str) -> RoomRow | None:
        row = await self.db.fetchone(
            "get_room",
            "SELECT room_id, room_version, creator, room_type, is_public, created_ts, blocked"
            " FROM rooms WHERE room_id = ?",
            room_id,
        )
        if row is None:
            return None
        return RoomRow(
            str(row[0]), str(row[1]), str(row[2]), row[3], bool(row[4]), int(row[5]), bool(row[6])
        )

    async def count_rooms(self) -> int:
        return int(await self.db.fetchval("count_rooms", "SELECT COUNT(*) FROM rooms") or 0)

    async def set_room_public(self, room_id: str, is_public: bool) -> None:
        await self.db.execute(
            "set_room_public",
            "UPDATE rooms SET is_public = ? WHERE room_id = ?",
            is_public,
            room_id,
        )

    async def get_public_room_ids(self) -> list[str]:
        rows = await self.db.fetchall(
            "get_public_rooms",
            "SELECT room_id FROM rooms WHERE is_public = ? AND blocked = ? ORDER BY room_id",
            True,
            False,
        )
        return [str(r[0]) for r in rows]

    async def _fetch_in(self, name: str, sql: str, ids: list[str], *args: object) -> list[Row]:
        """`sql` with `{}` for the marks of an `IN`, run over `ids` in chunks;
        `args` bind before the ids."""
        rows: list[Row] = []
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            rows.extend(await self.db.fetchall(name, sql.format(marks), *args, *chunk))
        return rows

    async def get_room_types(self, room_ids: list[str]) -> dict[str, str | None]:
        """`m.room.create`'s `type` of each known room (None: no type)."""
        sql = "SELECT room_id, room_type FROM rooms WHERE room_id IN ({})"
        rows = await self._fetch_in("get_room_types", sql, room_ids)
        return {str(r[0]): r[1] for r in rows}

    async def get_rooms_with_state(
        self, room_ids: list[str], event_type: str, state_key: str
    ) -> set[str]:
        """Which of `room_ids` have a current state event of this type and key."""
        sql = (
            "SELECT room_id FROM current_state WHERE type = ? AND state_key = ? AND room_id IN ({})"
        )
        rows = await self._fetch_in("get_rooms_with_state", sql, room_ids, event_type, state_key)
        return {str(r[0]) for r in rows}

    async def get_current_state_ids(self, room_id: str) -> dict[tuple[str, str], str]:
        rows = await self.db.fetchall(
            "get_current_state_ids",
            "SELECT type, state_key, event_id FROM current_state WHERE room_id = ?",
            room_id,
        )
        return {(str(r[0]), str(r[1])): str(r[2]) for r in rows}

    async def get_current_state_ids_of_rooms(
        self, room_ids: Collection[str]
    ) -> dict[str, dict[tuple[str, str], str]]:
        """`get_current_state_ids` of each room, one query per chunk of rooms."""
        out: dict[str, dict[tuple[str, str], str]] = {room_id: {} for room_id in room_ids}
        for chunk in chunks(room_ids):
            rows = await self.db.fetchall(
                "get_current_state_ids_of_rooms",
                "SELECT room_id, type, state_key, event_id FROM current_state"
                f" WHERE room_id IN ({','.join('?' * len(chunk))})",
                *chunk,
            )
            for r in rows:
                out[str(r[0])][(str(r[1]), str(r[2]))] = str(r[3])
        return out

    async def get_membership(self, room_id: str, user_id: str) -> Membership | None:
        row = await self.db.fetchone(
            "get_membership",
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM room_memberships WHERE room_id = ? AND user_id = ?",
            room_id,
            user_id,
        )
        return _membership(row) if row is not None else None

    async def get_rooms_for_user(
        self, user_id: str, memberships: tuple[str, ...] = ("join",)
    ) -> list[Membership]:
        marks = ",".join("?" * len(memberships))
        rows = await self.db.fetchall(
            "get_rooms_for_user",
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM room_memberships"
            f" WHERE user_id = ? AND membership IN ({marks}) ORDER BY stream_ordering",
            user_id,
            *memberships,
        )
        return [_membership(r) for r in rows]

    async def get_memberships_of_user(self, user_id: str) -> list[Membership]:
        rows = await self.db.fetchall(
            "get_memberships_of_user",
            f"SELECT {_MEMBERSHIP_COLUMNS} FROM room_memberships WHERE user_id = ?"
            " ORDER BY stream_ordering",
            user_id,
        )
        return [_membership(r) for r in rows]

    async def get_out_of_band_state(self, event_id: str) -> list[dict[str, Any]] | None:
        """The stripped state kept with an out-of-band membership event, or
        None when `event_id` is not one."""
        row = await self.db.fetchone(
            "get_out_of_band_state",
            "SELECT stripped_state FROM out_of_band_memberships WHERE event_id = ?",
            event_id,
        )
        if row is None:
            return None
        state = orjson.loads(str(row[0]))
        return [e for e in state if isinstance(e, dict)] if isinstance(state, list) else []

    async def get_members(self, room_id: str, membership: str | None = "join") -> list[Membership]:
        if membership is None:
            rows = await self.db.fetchall(
                "get_members",
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM room_memberships WHERE room_id = ?",
                room_id,
            )
        else:
            rows = await self.db.fetchall(
                "get_members",
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM room_memberships"
                " WHERE room_id = ? AND membership = ?",
                room_id,
                membership,
            )
        return [_membership(r) for r in rows]

    async def get_members_of_rooms(self, room_ids: Collection[str]) -> dict[str, list[Membership]]:
        """Every membership (of any kind) of each room, one query per chunk of rooms."""
        out: dict[str, list[Membership]] = {room_id: [] for room_id in room_ids}
        for chunk in chunks(room_ids):
            rows = await self.db.fetchall(
                "get_members_of_rooms",
                f"SELECT {_MEMBERSHIP_COLUMNS} FROM room_memberships"
                f" WHERE room_id IN ({','.join('?' * len(chunk))})",
                *chunk,
            )
            for row in rows:
                member = _membership(row)
                out[member.room_id].append(member)
        return out

    async def get_joined_hosts(self, room_id: str) -> set[str]:
        """The servers with a user joined to the room (in its current state)."""
        rows = await self.db.fetchall(
            "get_joined_hosts",
            "SELECT user_id FROM room_memberships WHERE room_id = ? AND membership = ?",
            room_id,
            "join",
        )
        return {str(r[0]).split(":", 1)[1] for r in rows if ":" in str(r[0])}

    async def forget(self, room_id: str, user_id: str) -> None:
        await self.db.execute(
            "forget_room",
            "UPDATE room_memberships SET forgotten = ? WHERE room_id = ? AND user_id = ?",
            True,
            room_id,
            user_id,
        )
        self.memberships_rewritten()

    async def users_sharing_rooms(self, user_id: str) -> set[str]:
        rows = await self.db.fetchall(
            "users_sharing_rooms",
            "SELECT DISTINCT other.user_id FROM room_memberships mine"
            " JOIN room_memberships other ON other.room_id = mine.room_id"
            " WHERE mine.user_id = ? AND mine.membership = 'join' AND other.membership = 'join'",
            user_id,
        )
        return {str(r[0]) for r in rows}

    # Aliases

    async def create_alias(self, alias: str, room_id: str, creator: str) -> bool:
        try:
            await self.db.execute(
                "create_alias",
                "INSERT INTO room_aliases (room_alias, room_id, creator) VALUES (?, ?, ?)",
                alias,
                room_id,
                creator,
            )
        except IntegrityError:
            return False
        return True

    async def get_alias(self, alias: str) -> tuple[str, str] | None:
        row = await self.db.fetchone(
            "get_alias",
            "SELECT room_id, creator FROM room_aliases WHERE room_alias = ?",
            alias,
        )
        return (str(row[0]), str(row[1])) if row is not None else None

    async def delete_alias(self, alias: str) -> None:
        await self.db.execute(
            "delete_alias", "DELETE FROM room_aliases WHERE room_alias = ?", alias
        )

    async def get_aliases_for_room(self, room_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "get_aliases_for_room",
            "SELECT room_alias FROM room_aliases WHERE room_id = ? ORDER BY room_alias",
            room_id,
        )
        return [str(r[0]) for r in rows]

    async def move_aliases(self, old_room_id: str, new_room_id: str) -> None:
        """Point every alias of one room at another (a room upgrade)."""
        await self.db.execute(
            "move_aliases",
            "UPDATE room_aliases SET room_id = ? WHERE room_id = ?",
            new_room_id,
            old_room_id,
        )
