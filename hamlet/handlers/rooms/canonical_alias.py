"""The rule on m.room.canonical_alias content that the auth rules leave to the server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.core.ids import RoomAlias
from hamlet.handlers.common.errors import MatrixError
from hamlet.storage.stores.rooms import RoomsStore


async def check_canonical_alias(
    rooms: RoomsStore, server_name: str, room_id: str, content: Mapping[str, Any]
) -> None:
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
        if RoomAlias.from_string(candidate).domain != server_name:
            continue
        found = await rooms.get_alias(candidate)
        if found is None or found[0] != room_id:
            raise MatrixError(
                400, "M_BAD_ALIAS", f"Room alias {candidate} does not point to the room"
            )
