"""Joining, leaving, inviting, kicking and banning: membership events for local users."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from hamlet.core.events import Event
from hamlet.core.ids import RoomAlias, UserID, is_room_id
from hamlet.core.room_versions import get_room_version
from hamlet.handlers.appservice.queries import AppServiceQueries
from hamlet.handlers.common.errors import (
    BadJsonError,
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.spaces.hierarchy import RestrictedJoins
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"
MEMBERSHIPS = frozenset({"join", "invite", "leave", "ban", "knock"})


class RemoteRejections(Protocol):
    async def reject_received_invite(
        self, user_id: str, room_id: str, reason: str | None = None
    ) -> Event | None:
        """The user's rejection of an invite to a room we are not in, made
        through the inviting server; None when they hold no such invite."""
        ...


class MembershipHandler:
    def __init__(
        self,
        *,
        server_name: str,
        creator: EventCreator,
        state: StateHandler,
        rooms: RoomsStore,
        profiles: ProfilesStore,
        app_service_queries: AppServiceQueries | None = None,
    ) -> None:
        self.server_name = server_name
        self.app_service_queries = app_service_queries
        self.creator = creator
        self.state = state
        self.rooms = rooms
        self.profiles = profiles
        self.restricted = RestrictedJoins(server_name=server_name, rooms=rooms, state=state)
        self._remote_rejections: RemoteRejections | None = None

    def attach_remote_rejections(self, rejections: RemoteRejections) -> None:
        """Federation (built after rooms) rejects invites to other servers' rooms."""
        self._remote_rejections = rejections

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            if not RoomAlias.is_valid(room_id_or_alias):
                raise InvalidParamError("Invalid room alias")
            queries = self.app_service_queries
            if queries is None:
                found = await self.rooms.get_alias(room_id_or_alias)
            else:
                found = await queries.find_alias(room_id_or_alias, self.rooms.get_alias)
            if found is None:
                raise NotFoundError("Room alias not found")
            return found[0]
        if not is_room_id(room_id_or_alias):
            raise InvalidParamError(f"{room_id_or_alias!r} is not a room ID or alias")
        return room_id_or_alias

    async def profile_content(self, user_id: str) -> dict[str, Any]:
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
        action: str | None = None,
        reason: str | None = None,
        extra: Mapping[str, Any] | None = None,
        origin_server_ts: int | None = None,
    ) -> Event:
        """Send `target`'s new membership; `action` is the endpoint's verb (`kick`,
        `unban`, ...) when it says more than the membership does.
        `origin_server_ts`: an application service's massaged timestamp."""
        action = action or membership
        if membership not in MEMBERSHIPS:
            raise BadJsonError(f"Invalid membership {membership!r}")
        if not UserID.is_valid(target):
            raise InvalidParamError(f"{target!r} is not a valid user ID")
        if membership == "leave" and sender == target and self._remote_rejections is not None:
            # Whatever asks (the client, deactivation), an invite to a room
            # we are not in is rejected through its server.
            rejection = await self._remote_rejections.reject_received_invite(
                target, room_id, reason
            )
            if rejection is not None:
                return rejection
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
            content.update(await self.profile_content(target))
        if extra:
            content.update(extra)
        if membership == "join":
            # Only this server vouches for a restricted join, never the client.
            content.pop("join_authorised_via_users_server", None)
            already_in = current is not None and current.membership in ("join", "invite")
            if sender == target and not already_in:
                authoriser = await self.restricted.authoriser_for_join(
                    room_id, get_room_version(room.room_version), target
                )
                if authoriser is not None:
                    content["join_authorised_via_users_server"] = authoriser
        if reason is not None:
            content["reason"] = reason
        old = current.membership if current is not None else None
        # Like Synapse: /unban only undoes a ban, and a banned user cannot be
        # kicked (which would lift the ban), invited or joined.
        if action == "unban" and old != "ban":
            raise ForbiddenError(
                f"Cannot unban user who was not banned (membership={old})", "M_BAD_STATE"
            )
        if old == "ban" and action not in ("unban", "ban", "leave"):
            raise ForbiddenError(f"Cannot {action} user who was banned", "M_BAD_STATE")
        if current is not None and old == membership:
            # The same change by the same sender again is a no-op (Synapse).
            stored = await self.creator.cache.get(current.event_id)
            if (
                stored is not None
                and stored.event.sender == sender
                and dict(stored.event.content) == content
            ):
                return stored.event
        if membership == "leave" and sender == target and current is None:
            raise ForbiddenError("You are not in this room")
        if (
            membership == "leave"
            and sender != target
            and (current is None or current.membership not in ("join", "invite", "knock", "ban"))
        ):
            raise ForbiddenError(f"{target} is not in this room")
        return await self.creator.send(
            sender, room_id, MEMBER, content, state_key=target, origin_server_ts=origin_server_ts
        )

    async def forget(self, user_id: str, room_id: str) -> None:
        current = await self.rooms.get_membership(room_id, user_id)
        if current is None:
            raise NotFoundError("You have never been in this room")
        if current.membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "You must leave the room before forgetting it")
        await self.rooms.forget(room_id, user_id)

    async def is_joined(self, user_id: str, room_id: str) -> bool:
        # The cached current state answers this on the hot paths (every send).
        member = await self.state.get_current_state_event(room_id, MEMBER, user_id)
        return member is not None and member.content.get("membership") == "join"

    async def require_joined(self, user_id: str, room_id: str) -> None:
        if ("m.room.create", "") not in await self.state.get_current_state_ids(room_id):
            raise NotFoundError("Unknown room")
        if not await self.is_joined(user_id, room_id):
            raise ForbiddenError(f"User {user_id} not in room {room_id}")

    async def joined_room_ids(self, user_id: str) -> list[str]:
        return [m.room_id for m in await self.rooms.get_rooms_for_user(user_id)]
