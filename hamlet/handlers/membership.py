"""Joining, leaving, inviting, kicking and banning: membership events for local users."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.core.events import Event
from hamlet.core.ids import RoomAlias, UserID
from hamlet.handlers.errors import ForbiddenError, InvalidParamError, MatrixError, NotFoundError
from hamlet.handlers.event_creation import EventCreator
from hamlet.handlers.state import StateHandler
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.rooms import RoomsStore

MEMBER = "m.room.member"


class MembershipHandler:
    def __init__(
        self,
        *,
        server_name: str,
        creator: EventCreator,
        state: StateHandler,
        rooms: RoomsStore,
        profiles: ProfilesStore,
    ) -> None:
        self.server_name = server_name
        self.creator = creator
        self.state = state
        self.rooms = rooms
        self.profiles = profiles

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            if not RoomAlias.is_valid(room_id_or_alias):
                raise InvalidParamError("Invalid room alias")
            found = await self.rooms.get_alias(room_id_or_alias)
            if found is None:
                raise NotFoundError("Room alias not found")
            return found[0]
        if not room_id_or_alias.startswith("!") or ":" not in room_id_or_alias:
            raise InvalidParamError(f"{room_id_or_alias!r} is not a room ID or alias")
        return room_id_or_alias

    async def _profile_content(self, user_id: str) -> dict[str, Any]:
        profile = await self.profiles.get_profile(user_id)
        content: dict[str, Any] = {}
        if profile is not None:
            displayname, avatar_url = profile
            if displayname is not None:
                content["displayname"] = displayname
            if avatar_url is not None:
                content["avatar_url"] = avatar_url
        return content

    async def update_membership(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        *,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
        txn: tuple[str, str, str] | None = None,
    ) -> Event:
        if not UserID.is_valid(target):
            raise InvalidParamError(f"{target!r} is not a valid user ID")
        room = await self.rooms.get_room(room_id)
        if room is None:
            raise NotFoundError("Unknown room")
        if room.blocked and membership in ("join", "invite", "knock"):
            raise ForbiddenError("This room has been blocked on this server")
        current = await self.rooms.get_membership(room_id, target)
        content: dict[str, Any] = {"membership": membership}
        if membership in ("join", "invite", "knock") and UserID.from_string(target).domain == (
            self.server_name
        ):
            content.update(await self._profile_content(target))
        if extra:
            content.update(extra)
        if reason is not None:
            content["reason"] = reason
        if membership == "join" and current is not None and current.membership == "join":
            # Re-joining is a no-op unless the profile changed.
            stored = await self.creator.cache.get(current.event_id)
            if stored is not None and dict(stored.event.content) == content:
                return stored.event
        if membership == "leave" and sender == target and current is None:
            raise ForbiddenError("You are not in this room")
        if membership == "leave" and sender != target and (
            current is None or current.membership not in ("join", "invite", "knock", "ban")
        ):
            raise ForbiddenError(f"{target} is not in this room")
        return await self.creator.send(
            sender, room_id, MEMBER, content, state_key=target, txn=txn
        )

    async def forget(self, user_id: str, room_id: str) -> None:
        current = await self.rooms.get_membership(room_id, user_id)
        if current is None:
            raise NotFoundError("You have never been in this room")
        if current.membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "You must leave the room before forgetting it")
        await self.rooms.forget(room_id, user_id)

    async def is_joined(self, user_id: str, room_id: str) -> bool:
        current = await self.rooms.get_membership(room_id, user_id)
        return current is not None and current.membership == "join"

    async def require_joined(self, user_id: str, room_id: str) -> None:
        if await self.rooms.get_room(room_id) is None:
            raise NotFoundError("Unknown room")
        if not await self.is_joined(user_id, room_id):
            raise ForbiddenError(f"User {user_id} not in room {room_id}")
