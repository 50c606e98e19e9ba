"""Password login: who the client says it is, and whether the password agrees.

A wrong password and an unknown user get the same answer (and take as long),
so login never tells whether an account exists.
"""

from __future__ import annotations

from typing import Any

from hamlet.config import HomeServerConfig
from hamlet.handlers.accounts.devices import MAX_DEVICE_ID_LENGTH, DeviceHandler
from hamlet.handlers.accounts.passwords import MAX_PASSWORD_LENGTH, PasswordHasher
from hamlet.handlers.accounts.ratelimits import AccountRatelimiters
from hamlet.handlers.appservice.registry import AppService
from hamlet.handlers.common.errors import (
    AuthError,
    BadJsonError,
    ForbiddenError,
    MatrixError,
    MissingParamError,
)
from hamlet.storage.stores.accounts import AccountStore, UserRecord

LOGIN_TYPE_PASSWORD = "m.login.password"
LOGIN_TYPE_APP_SERVICE = "m.login.application_service"
INVALID_CREDENTIALS = "Invalid username or password"


def user_id_from_identifier(body: dict[str, Any], server_name: str) -> str:
    """The user ID named by `identifier` (`m.id.user`) or the legacy `user` field.

    A localpart is qualified with `server_name`. Third-party identifiers are
    refused: this server keeps no 3PIDs.
    """
    identifier = body.get("identifier")
    if identifier is None:
        user = body.get("user")
        if user is None:
            if "medium" in body or "address" in body:
                raise ForbiddenError(INVALID_CREDENTIALS)
            raise MissingParamError("Missing param: identifier")
        identifier = {"type": "m.id.user", "user": user}
    if not isinstance(identifier, dict):
        raise BadJsonError("'identifier' must be an object")
    id_type = identifier.get("type")
    if id_type == "m.id.thirdparty" or id_type == "m.id.phone":
        raise ForbiddenError(INVALID_CREDENTIALS)
    if id_type != "m.id.user":
        raise MatrixError(400, "M_UNKNOWN", "Unknown login identifier type")
    user = identifier.get("user")
    if not isinstance(user, str) or not user:
        raise BadJsonError("'identifier.user' must be a non-empty string")
    if user.startswith("@"):
        return user
    return f"@{user}:{server_name}"


def password_from(body: dict[str, Any]) -> str:
    password = body.get("password")
    if password is None:
        raise MissingParamError("Missing param: password")
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        raise BadJsonError("'password' must be a string")
    return password


def _device_fields(body: dict[str, Any]) -> tuple[str | None, str | None]:
    device_id = body.get("device_id")
    if device_id is not None and (
        not isinstance(device_id, str) or not device_id or len(device_id) > MAX_DEVICE_ID_LENGTH
    ):
        raise BadJsonError("'device_id' must be a non-empty string")
    display_name = body.get("initial_device_display_name")
    if display_name is not None and not isinstance(display_name, str):
        raise BadJsonError("'initial_device_display_name' must be a string")
    return device_id, display_name


def _deactivated() -> ForbiddenError:
    return ForbiddenError("This account has been deactivated", errcode="M_USER_DEACTIVATED")


class LoginHandler:
    def __init__(
        self,
        config: HomeServerConfig,
        accounts: AccountStore,
        hasher: PasswordHasher,
        devices: DeviceHandler,
        ratelimiters: AccountRatelimiters,
    ) -> None:
        self._config = config
        self._accounts = accounts
        self._hasher = hasher
        self._devices = devices
        self._limits = ratelimiters

    @property
    def password_enabled(self) -> bool:
        """May one log in with a password? (`enabled: only_for_reauth` keeps it
        for re-authenticating an open session only, as in Synapse.)"""
        pc = self._config.password_config
        return pc.enabled and pc.localdb_enabled and not pc.only_for_reauth

    def flows(self) -> list[dict[str, Any]]:
        flows = [{"type": LOGIN_TYPE_PASSWORD}] if self.password_enabled else []
        if self._config.app_services:
            flows.append({"type": LOGIN_TYPE_APP_SERVICE})
        return flows

    async def check_password(self, user_id: str, password: str) -> UserRecord | None:
        """The user if `password` is theirs; None (after the same work) otherwise.

        `user_id` is matched exactly, then case-insensitively (accounts from
        before the lower-case rule).
        """
        user = await self._accounts.get_user(user_id)
        if user is None:
            matches = await self._accounts.get_users_case_insensitive(user_id)
            if len(matches) == 1:
                user = matches[0]
        stored = user.password_hash if user is not None else None
        if not await self._hasher.check(password, stored) or user is None:
            return None
        return user

    async def login(
        self, body: dict[str, Any], client_ip: str, app_service: AppService | None = None
    ) -> dict[str, Any]:
        """Log in with a password, or (`app_service` authenticated the request
        with its as_token) as one of an application service's users."""
        login_type = body.get("type")
        if not isinstance(login_type, str):
            raise BadJsonError("'type' must be a string")
        if login_type == LOGIN_TYPE_APP_SERVICE:
            return await self._login_app_service(body, app_service)
        await self._limits.login_address.ratelimit((client_ip,))
        if login_type != LOGIN_TYPE_PASSWORD or not self.password_enabled:
            raise MatrixError(400, "M_UNKNOWN", "Unknown login type")
        device_id, display_name = _device_fields(body)
        user_id = user_id_from_identifier(body, self._config.server_name)
        password = password_from(body)

        key = user_id.lower()
        await self._limits.login_account.ratelimit(key)
        # Refused already if this account has had too many failed attempts.
        await self._limits.login_failed.ratelimit(key, update=False)
        user = await self.check_password(user_id, password)
        if user is None:
            await self._limits.login_failed.ratelimit(key)
            # Deactivation forgets the password; as in Synapse, such an account
            # says it is deactivated rather than that the password is wrong.
            found = await self._accounts.get_user(user_id)
            if found is not None and found.deactivated and found.password_hash is None:
                raise _deactivated()
            raise ForbiddenError(INVALID_CREDENTIALS)
        if user.deactivated:
            raise _deactivated()
        if user.locked:
            raise MatrixError(401, "M_USER_LOCKED", "This account has been locked")
        return await self._complete(user.user_id, device_id, display_name)

    async def _login_app_service(
        self, body: dict[str, Any], service: AppService | None
    ) -> dict[str, Any]:
        """No password and no rate limit: the as_token vouches for the user,
        who must be in the service's namespace and registered (as Synapse)."""
        if service is None:
            raise AuthError("M_MISSING_TOKEN", "Missing application service token")
        device_id, display_name = _device_fields(body)
        user_id = user_id_from_identifier(body, self._config.server_name)
        if not service.owns_user(user_id):
            raise ForbiddenError("Invalid access_token")
        user = await self._accounts.get_user(user_id)
        if user is None:
            raise ForbiddenError(INVALID_CREDENTIALS)
        if user.deactivated:
            raise _deactivated()
        return await self._complete(user_id, device_id, display_name)

    async def _complete(
        self, user_id: str, device_id: str | None, display_name: str | None
    ) -> dict[str, Any]:
        device_id, token = await self._devices.login_device(user_id, device_id, display_name)
        return {
            "user_id": user_id,
            "access_token": token,
            "device_id": device_id,
            "home_server": self._config.server_name,
            "well_known": {"m.homeserver": {"base_url": self._config.public_baseurl}},
        }

    async def shutdown(self) -> None:
        return None
