"""Room aliases and the canonical alias rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.core.ids import RoomAlias
from hamlet.core.power_levels import get_user_power_level
from hamlet.handlers.errors import ForbiddenError, InvalidParamError, MatrixError, NotFoundError
from hamlet.handlers.state import StateHandler
from hamlet.storage.stores.rooms import RoomsStore


class DirectoryHandler:
    def __init__(self, *, server_name: str, rooms: RoomsStore, state: StateHandler) -> None:
        self.server_name = server_name
        self.rooms = rooms
        self.state = state

    def _local_alias(self, alias: str) -> RoomAlias:
        if not RoomAlias.is_valid(alias):
            raise InvalidParamError(f"{alias!r} is not a valid room alias")
        parsed = RoomAlias.from_string(alias)
        if parsed.domain != self.server_name:
            raise InvalidParamError("Room alias must be local")
        return parsed

    async def create_alias(self, user_id: str, alias: str, room_id: str) -> None:
        self._local_alias(alias)
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError("Unknown room")
        if not await self.rooms.create_alias(alias, room_id, user_id):
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists")

    async def get_alias(self, alias: str) -> dict[str, Any]:
        if not RoomAlias.is_valid(alias):
            raise InvalidParamError(f"{alias!r} is not a valid room alias")
        found = await self.rooms.get_alias(alias)
        if found is None:
            raise NotFoundError(f"Room alias {alias} not found")
        return {"room_id": found[0], "servers": [self.server_name]}

    async def delete_alias(self, user_id: str, alias: str, *, is_admin: bool) -> None:
        self._local_alias(alias)
        found = await self.rooms.get_alias(alias)
        if found is None:
            raise NotFoundError(f"Room alias {alias} not found")
        room_id, creator = found
        if not is_admin and creator != user_id:
            # Like Synapse: room admins (who may change the canonical alias) may delete it.
            state = await self.state.get_current_state(
                room_id, {("m.room.create", ""), ("m.room.power_levels", "")}
            )
            if get_user_power_level(user_id, state) < 50:
                raise ForbiddenError("You don't have permission to delete the alias")
        await self.rooms.delete_alias(alias)

    async def check_canonical_alias(self, room_id: str, content: Mapping[str, Any]) -> None:
        """m.room.canonical_alias may only name local aliases that point at the room."""
        alias = content.get("alias")
        alt = content.get("alt_aliases", [])
        if alias is not None and not isinstance(alias, str):
            raise MatrixError(400, "M_INVALID_PARAM", "alias must be a string")
        if not isinstance(alt, list) or not all(isinstance(a, str) for a in alt):
            raise MatrixError(400, "M_INVALID_PARAM", "alt_aliases must be a list of strings")
        for candidate in ([alias] if alias else []) + list(alt):
            if not RoomAlias.is_valid(candidate):
                raise MatrixError(400, "M_INVALID_PARAM", f"{candidate!r} is not a room alias")
            if RoomAlias.from_string(candidate).domain != self.server_name:
                continue
            found = await self.rooms.get_alias(candidate)
            if found is None or found[0] != room_id:
                raise MatrixError(
                    400, "M_BAD_ALIAS", f"Room alias {candidate} does not point to the room"
                )
