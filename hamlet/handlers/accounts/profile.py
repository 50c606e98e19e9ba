"""Display names and avatars: reading, changing, and carrying changes into rooms."""

from __future__ import annotations

from typing import Any

from hamlet.config import HomeServerConfig
from hamlet.core.ids import UserID
from hamlet.handlers.accounts.ratelimits import AccountRatelimiters
from hamlet.handlers.appservice.queries import AppServiceQueries
from hamlet.handlers.common.errors import (
    ForbiddenError,
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.rooms import RoomsStore

MAX_DISPLAYNAME_LEN = 256
MAX_AVATAR_URL_LEN = 1000
FIELDS = ("displayname", "avatar_url")


class ProfileHandler:
    def __init__(
        self,
        *,
        config: HomeServerConfig,
        accounts: AccountStore,
        profiles: ProfilesStore,
        rooms: RoomsStore,
        pipeline: EventPipeline,
        limits: AccountRatelimiters,
        app_service_queries: AppServiceQueries | None = None,
    ) -> None:
        self.config = config
        self.limits = limits
        self.app_service_queries = app_service_queries
        self.server_name = config.server_name
        self.accounts = accounts
        self.profiles = profiles
        self.rooms = rooms
        self.pipeline = pipeline

    def _is_mine(self, user_id: str) -> bool:
        return UserID.is_valid(user_id) and UserID.from_string(user_id).domain == self.server_name

    async def check_may_look_up(
        self, requester: Requester | None, target: str, client_ip: str
    ) -> None:
        """`rc_profile`, then `limit_profile_requests_to_users_who_share_rooms`:
        only people you share a room with."""
        key = requester.user_id if requester is not None else client_ip
        await self.limits.profile_lookup.ratelimit(key)
        if requester is None or not self.config.limit_profile_requests_to_users_who_share_rooms:
            return
        if requester.user_id == target:
            return
        if target not in await self.rooms.users_sharing_rooms(requester.user_id):
            raise ForbiddenError("You don't share a room with this user")

    async def _exists(self, user_id: str) -> bool:
        """Known here, or a bridge creates it when asked (its namespace)."""
        queries = self.app_service_queries
        if queries is None:
            return await self.accounts.user_exists(user_id)
        return await queries.user_exists(user_id, self.accounts.user_exists)

    async def get_profile(self, target: str) -> dict[str, Any]:
        if not UserID.is_valid(target):
            raise InvalidParamError(f"{target!r} is not a valid user ID")
        if not self._is_mine(target) or not await self._exists(target):
            # Other servers' users are asked of their server (FederationQueries).
            raise NotFoundError("Profile was not found")
        profile = await self.profiles.get_profile(target)
        out: dict[str, Any] = {}
        if profile is not None:
            for name, value in zip(FIELDS, profile, strict=True):
                if value is not None:
                    out[name] = value
        return out

    async def federation_profile(self, target: str, field: str | None) -> dict[str, Any]:
        """`GET /_matrix/federation/v1/query/profile`: a local user's profile,
        or one field of it, for another server. As Synapse: 403 when
        `allow_profile_lookup_over_federation` is off, 400 for a user of
        another server, 404 for an unknown user or a field we never have;
        `limit_profile_requests_to_users_who_share_rooms` is for our own
        users' lookups and does not apply here."""
        if not self.config.allow_profile_lookup_over_federation:
            raise ForbiddenError("Profile lookup over federation is disabled on this homeserver")
        if not UserID.is_valid(target):
            raise InvalidParamError(f"{target!r} is not a valid user ID")
        if not self._is_mine(target):
            raise InvalidParamError("User is not hosted on this homeserver")
        if field is not None and field not in FIELDS:
            raise NotFoundError("Profile was not found")
        profile = await self.get_profile(target)
        return profile if field is None else {k: v for k, v in profile.items() if k == field}

    async def set_field(self, requester: Requester, target: str, field: str, value: Any) -> None:
        if field not in FIELDS:
            raise InvalidParamError(f"Unknown profile field {field!r}")
        if requester.user_id != target and not requester.is_admin:
            raise ForbiddenError(f"Cannot set another user's {field}")
        if not self._is_mine(target):
            raise MatrixError(400, "M_INVALID_PARAM", "User is not hosted on this homeserver")
        enabled = (
            self.config.enable_set_displayname
            if field == "displayname"
            else self.config.enable_set_avatar_url
        )
        if not enabled and not requester.is_admin:
            raise ForbiddenError(f"Changing {field} is disabled on this server")
        if value is not None and not isinstance(value, str):
            raise InvalidParamError(f"{field} must be a string")
        limit = MAX_DISPLAYNAME_LEN if field == "displayname" else MAX_AVATAR_URL_LEN
        if value is not None and len(value) > limit:
            raise InvalidParamError(f"{field} is too long (max {limit})")
        if value == "":
            value = None
        user = await self.accounts.get_user(target)
        if user is None:
            raise NotFoundError("Profile was not found")
        if user.deactivated and not requester.is_admin:
            raise ForbiddenError("The user has been deactivated")
        current = await self.profiles.get_profile(target)
        if current is not None and current[FIELDS.index(field)] == value:
            return
        await self.profiles.set_field(target, field, value)
        await self.update_join_events(target)

    async def update_join_events(self, user_id: str) -> None:
        """A new join event carrying the new profile in every room the user is in."""
        joined = await self.rooms.get_rooms_for_user(user_id)
        await self.pipeline.set_own_membership(user_id, (m.room_id for m in joined), "join")
