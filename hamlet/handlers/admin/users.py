"""What server admins may do to users (the users side of Synapse's admin API).

Listing and inspecting users; creating and changing them; deactivation
(with erasure), password resets, devices, shadow-bans, rate-limit
overrides, and logging in as a user. Every change that affects what a
user's access token may do drops the user's cached tokens, so it takes
effect on their next request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from hamlet.config import HomeServerConfig
from hamlet.core.ids import UserID
from hamlet.handlers.accounts.account import AccountHandler
from hamlet.handlers.accounts.auth import AuthHandler, generate_access_token, hash_token
from hamlet.handlers.accounts.deactivation import DeactivationHandler
from hamlet.handlers.accounts.devices import MAX_DISPLAY_NAME_LENGTH, DeviceHandler
from hamlet.handlers.accounts.passwords import check_password_length
from hamlet.handlers.accounts.profile import ProfileHandler
from hamlet.handlers.accounts.register import USER_TYPES, RegistrationHandler
from hamlet.handlers.common.errors import (
    InvalidParamError,
    MatrixError,
    NotFoundError,
)
from hamlet.handlers.common.ratelimit_overrides import RatelimitOverrides
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock, LoopingCall
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.admin_users import ORDER_COLUMNS, AdminUserRow, AdminUserStore

# The listing's filters, part of this handler's interface (the API builds one).
from hamlet.storage.stores.admin_users import UserListQuery as UserListQuery
from hamlet.storage.stores.devices import DeviceRecord
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

MAX_PASSWORD_LENGTH: Final = 512
MAX_DISPLAYNAME_LENGTH: Final = 256
# An expired login-as token is refused at lookup (`soft_logout: true`) from
# the moment it expires; its row is kept this long so a client coming back
# still hears "soft logout" rather than "unknown token", then swept.
EXPIRED_TOKEN_RETENTION_MS: Final = 7 * 24 * 3600 * 1000
TOKEN_SWEEP_INTERVAL_S: Final = 3600.0


def _bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidParamError(f"'{key}' parameter is not of type boolean")
    return value


def _device_json(device: DeviceRecord) -> dict[str, Any]:
    """A device as Synapse's admin API shows it: every field, null when unknown."""
    return {
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
        "last_seen_user_agent": device.last_seen_user_agent,
        "user_id": device.user_id,
        "dehydrated": False,
    }


def user_list_json(row: AdminUserRow) -> dict[str, Any]:
    """One entry of the users listing (`creation_ts` in milliseconds, as Synapse)."""
    return {
        "name": row.name,
        "user_type": row.user_type,
        "is_guest": row.is_guest,
        "admin": row.admin,
        "deactivated": row.deactivated,
        "shadow_banned": row.shadow_banned,
        "displayname": row.displayname,
        "avatar_url": row.avatar_url,
        "creation_ts": row.creation_ts,
        "locked": row.locked,
        "approved": row.approved,
        "erased": row.erased,
        "last_seen_ts": row.last_seen_ts,
    }


def user_details_json(row: AdminUserRow) -> dict[str, Any]:
    """`GET /_synapse/admin/v2/users/<user_id>`.

    Synapse gives `creation_ts` in seconds here (unlike the listing), and
    tools such as synapse-admin multiply it by 1000: so do we.
    """
    return {
        "name": row.name,
        "displayname": row.displayname,
        "threepids": [],
        "avatar_url": row.avatar_url,
        "is_guest": row.is_guest,
        "admin": row.admin,
        "deactivated": row.deactivated,
        "erased": row.erased,
        "shadow_banned": row.shadow_banned,
        "creation_ts": row.creation_ts // 1000,
        "last_seen_ts": row.last_seen_ts,
        "appservice_id": row.appservice_id,
        "consent_server_notice_sent": None,
        "consent_version": row.consent_version,
        "consent_ts": None,
        "external_ids": [],
        "user_type": row.user_type,
        "locked": row.locked,
        "suspended": False,
        "approved": row.approved,
    }


@dataclass(frozen=True, slots=True)
class UserChanges:
    """A validated `PUT /_synapse/admin/v2/users/<user_id>` body."""

    password: str | None
    logout_devices: bool
    displayname: str | None
    avatar_url: str | None
    admin: bool | None
    deactivated: bool | None
    locked: bool | None
    user_type: str | None
    set_user_type: bool

    @classmethod
    def parse(cls, body: dict[str, Any]) -> UserChanges:
        password = body.get("password")
        if password is not None and (
            not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH
        ):
            raise InvalidParamError("Invalid password")
        if password is not None:
            # Before any change is made: a refused password leaves the user as it was.
            check_password_length(password)
        logout_devices = _bool(body, "logout_devices")
        displayname = body.get("displayname")
        if displayname is not None and (
            not isinstance(displayname, str) or len(displayname) > MAX_DISPLAYNAME_LENGTH
        ):
            raise InvalidParamError("Invalid displayname")
        avatar_url = body.get("avatar_url")
        if avatar_url is not None and (
            not isinstance(avatar_url, str) or (avatar_url and not avatar_url.startswith("mxc://"))
        ):
            raise InvalidParamError("avatar_url must be an mxc:// URI")
        user_type = body.get("user_type")
        if user_type is not None and user_type not in USER_TYPES:
            raise InvalidParamError("Invalid user type")
        for key in ("threepids", "external_ids"):
            value = body.get(key)
            if value is not None and not isinstance(value, list):
                raise InvalidParamError(f"'{key}' must be a list")
            if value:
                raise InvalidParamError(f"'{key}' are not supported by this server")
        return cls(
            password=password,
            logout_devices=True if logout_devices is None else logout_devices,
            displayname=displayname,
            avatar_url=avatar_url,
            admin=_bool(body, "admin"),
            deactivated=_bool(body, "deactivated"),
            locked=_bool(body, "locked"),
            user_type=user_type,
            set_user_type="user_type" in body,
        )


class AdminUsersHandler(ServiceBase):
    def __init__(
        self,
        *,
        config: HomeServerConfig,
        clock: Clock,
        store: AdminUserStore,
        accounts: AccountStore,
        profiles: ProfilesStore,
        rooms: RoomsStore,
        auth: AuthHandler,
        devices: DeviceHandler,
        account: AccountHandler,
        registration: RegistrationHandler,
        deactivation: DeactivationHandler,
        profile: ProfileHandler,
        overrides: RatelimitOverrides,
    ) -> None:
        self._config = config
        self.server_name = config.server_name
        self._clock = clock
        self.store = store
        self._accounts = accounts
        self._profiles = profiles
        self._rooms = rooms
        self._auth = auth
        self._devices = devices
        self._account = account
        self._registration = registration
        self._deactivation = deactivation
        self._profile = profile
        self.overrides = overrides
        self._sweep: LoopingCall | None = None

    # Looking users up

    def require_local(self, user_id: str, message: str = "Can only look up local users") -> None:
        if not UserID.is_valid(user_id):
            raise InvalidParamError(f"{user_id!r} is not a valid user ID")
        if UserID.from_string(user_id).domain != self.server_name:
            raise MatrixError(400, "M_UNKNOWN", message)

    async def get_user(self, user_id: str) -> AdminUserRow:
        """A local user, or `400` (not local) / `404 M_NOT_FOUND` (no such user)."""
        self.require_local(user_id)
        row = await self.store.get_user(user_id)
        if row is None:
            raise NotFoundError("User not found")
        return row

    async def list_users(self, query: UserListQuery, start: int, limit: int) -> dict[str, Any]:
        if query.order_by not in ORDER_COLUMNS:
            raise InvalidParamError("Unknown value for order_by")
        rows, total = await self.store.list_users(query, start, limit)
        result: dict[str, Any] = {"users": [user_list_json(r) for r in rows], "total": total}
        if start + len(rows) < total:
            result["next_token"] = str(start + len(rows))
        return result

    # Creating and changing users

    async def create_or_modify(
        self, requester: Requester, user_id: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """201 with the new user, or 200 with the changed one."""
        self.require_local(user_id, "This endpoint can only be used with local users")
        changes = UserChanges.parse(body)
        existing = await self.store.get_user(user_id)
        if existing is None:
            await self._create(user_id, changes)
            status = 201
        else:
            await self._modify(requester, existing, changes)
            status = 200
        return status, user_details_json(await self.get_user(user_id))

    async def _create(self, user_id: str, changes: UserChanges) -> None:
        localpart = UserID.from_string(user_id).localpart
        await self._registration.register_user(
            localpart,
            changes.password,
            admin=bool(changes.admin),
            user_type=changes.user_type,
            displayname=changes.displayname or None,
        )
        if changes.avatar_url:
            await self._profiles.set_field(user_id, "avatar_url", changes.avatar_url)
        if changes.locked:
            await self.store.set_flag(user_id, "locked", True)
        if changes.deactivated:
            await self.deactivate(user_id, erase=False)

    async def _modify(self, requester: Requester, user: AdminUserRow, changes: UserChanges) -> None:
        user_id = user.name
        profile_changed = False
        if changes.displayname is not None and changes.displayname != (user.displayname or ""):
            await self._profiles.set_field(user_id, "displayname", changes.displayname or None)
            profile_changed = True
        if changes.avatar_url is not None and changes.avatar_url != (user.avatar_url or ""):
            await self._profiles.set_field(user_id, "avatar_url", changes.avatar_url or None)
            profile_changed = True
        if changes.admin is not None and changes.admin != user.admin:
            await self.set_admin(requester, user_id, changes.admin)
        if changes.password is not None:
            await self._account.set_password(
                user_id, changes.password, logout_devices=changes.logout_devices
            )
        if changes.set_user_type and changes.user_type != user.user_type:
            await self.store.set_flag(user_id, "user_type", changes.user_type)
        if changes.locked is not None and changes.locked != user.locked:
            await self.store.set_flag(user_id, "locked", changes.locked)
            self._auth.invalidate_user(user_id)
        if changes.deactivated is not None and changes.deactivated != user.deactivated:
            if changes.deactivated:
                await self.deactivate(user_id, erase=False)
            else:
                await self._accounts.set_deactivated(user_id, False)
                await self.store.unmark_erased(user_id)
                self._auth.invalidate_user(user_id)
                logger.info("Reactivated %s", user_id)
        if profile_changed and not (changes.deactivated or user.deactivated):
            await self._profile.update_join_events(user_id)

    async def set_admin(self, requester: Requester, user_id: str, admin: bool) -> None:
        if user_id == requester.user_id and not admin:
            raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself.")
        await self._accounts.set_admin(user_id, admin)
        self._auth.invalidate_user(user_id)

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        await self._deactivation.deactivate(user_id, erase=erase)

    async def reset_password(
        self, user_id: str, new_password: str, *, logout_devices: bool
    ) -> None:
        await self._account.set_password(user_id, new_password, logout_devices=logout_devices)

    async def set_shadow_banned(self, user_id: str, banned: bool) -> None:
        await self.store.set_flag(user_id, "shadow_banned", banned)
        self._auth.invalidate_user(user_id)

    # Sessions, rooms, devices

    async def whois(self, user_id: str) -> dict[str, Any]:
        devices: dict[str, Any] = {}
        for device in await self._devices.get_devices(user_id):
            connections = []
            if device.last_seen_ts is not None:
                connections.append(
                    {
                        "ip": device.last_seen_ip,
                        "last_seen": device.last_seen_ts,
                        "user_agent": device.last_seen_user_agent,
                    }
                )
            devices[device.device_id] = {"sessions": [{"connections": connections}]}
        return {"user_id": user_id, "devices": devices}

    async def joined_rooms(self, user_id: str) -> dict[str, Any]:
        rooms = [m.room_id for m in await self._rooms.get_rooms_for_user(user_id)]
        return {"joined_rooms": rooms, "total": len(rooms)}

    async def list_devices(self, user_id: str) -> dict[str, Any]:
        devices = await self._devices.get_devices(user_id)
        return {"devices": [_device_json(d) for d in devices], "total": len(devices)}

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        device = await self._devices.get_device(user_id, device_id)
        if device is None:
            raise NotFoundError("No device found")
        return _device_json(device)

    async def create_device(self, user_id: str, device_id: str) -> None:
        await self._devices.create_device(user_id, device_id)

    async def update_device(self, user_id: str, device_id: str, body: dict[str, Any]) -> None:
        display_name = body.get("display_name")
        if display_name is not None and (
            not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME_LENGTH
        ):
            raise InvalidParamError("Invalid display_name")
        if await self._devices.get_device(user_id, device_id) is None:
            raise NotFoundError("No device found")
        if display_name is not None:
            await self._devices.set_display_name(user_id, device_id, display_name)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        await self._devices.delete_devices(user_id, device_ids)

    # Logging in as a user

    async def login_as(
        self, requester: Requester, user_id: str, valid_until_ms: int | None
    ) -> dict[str, Any]:
        """A new access token for the user, without a device, puppeted by the admin."""
        if user_id == requester.user_id:
            raise MatrixError(400, "M_UNKNOWN", "Cannot use admin API to login as self")
        await self.get_user(user_id)
        now = self._clock.time_msec()
        if valid_until_ms is not None and valid_until_ms <= now:
            raise InvalidParamError("'valid_until_ms' parameter must be in the future")
        token = generate_access_token(user_id)
        token_hash = hash_token(token)
        await self._devices.store.add_access_token(
            token_hash,
            user_id,
            None,
            now,
            puppets_user_id=requester.user_id,
            valid_until_ms=valid_until_ms,
        )
        return {"access_token": token}

    def start(self) -> None:
        if self._sweep is None:
            self._sweep = self._clock.looping_call(
                self._expire_in_background, TOKEN_SWEEP_INTERVAL_S
            )
        self._expire_in_background()

    def _expire_in_background(self) -> object:
        return self._clock.run_as_background_process("expire_access_tokens", self.expire_tokens)

    async def expire_tokens(self) -> int:
        """Revoke every access token expired for longer than the retention; returns how many."""
        revoked = await self.store.delete_expired_tokens(
            self._clock.time_msec() - EXPIRED_TOKEN_RETENTION_MS
        )
        if revoked:
            self._auth.invalidate_tokens(revoked)
            logger.info("Revoked %d expired access token(s)", len(revoked))
        return len(revoked)

    # Usernames

    async def username_available(self, username: str) -> dict[str, Any]:
        await self._registration.check_username(username)
        return {"available": True}

    async def shutdown(self) -> None:
        if self._sweep is not None:
            self._sweep.stop()
            self._sweep = None
