"""Creating accounts: localpart rules, numeric IDs, and the registration itself.

`register_user` is the one way to create a user (client registration,
shared-secret registration, the admin API); it never logs anyone in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from hamlet.config import HomeServerConfig
from hamlet.core.ids import MAX_ID_LENGTH, is_valid_localpart
from hamlet.handlers.accounts.devices import DeviceHandler
from hamlet.handlers.accounts.passwords import PasswordHasher, validate_password
from hamlet.handlers.accounts.ratelimits import AccountRatelimiters
from hamlet.handlers.accounts.uia import Flows, UiaHandler
from hamlet.handlers.appservice.registry import AppService, AppServices
from hamlet.handlers.common.errors import ForbiddenError, MatrixError, MissingParamError
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.accounts import (
    AccountStore,
    RegistrationTokenUnavailableError,
    UserInUseError,
)
from hamlet.storage.stores.registration_tokens import RegistrationTokenStore

logger = logging.getLogger(__name__)

STAGE_DUMMY = "m.login.dummy"
STAGE_REGISTRATION_TOKEN = "m.login.registration_token"
USER_TYPES = ("support", "bot")


class AfterRegistration(Protocol):
    """Work for every new user once it exists (rooms/auto_join.py joins its rooms)."""

    def __call__(
        self, user_id: str, *, is_guest: bool, user_type: str | None
    ) -> Awaitable[None]: ...


def invalid_username(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", message)


class RegistrationHandler:
    def __init__(
        self,
        config: HomeServerConfig,
        clock: Clock,
        accounts: AccountStore,
        tokens: RegistrationTokenStore,
        hasher: PasswordHasher,
        devices: DeviceHandler,
        uia: UiaHandler,
        ratelimiters: AccountRatelimiters,
        after_registration: AfterRegistration | None = None,
        app_services: AppServices | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._accounts = accounts
        self.tokens = tokens
        self._hasher = hasher
        self._devices = devices
        self._uia = uia
        self._limits = ratelimiters
        self._next_numeric: int | None = None
        self.after_registration = after_registration
        self._numeric_lock = asyncio.Lock()
        self._user_limit_lock = asyncio.Lock()
        self._app_services = app_services or AppServices((), config.server_name)

    @property
    def server_name(self) -> str:
        return self._config.server_name

    def user_id_for(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # Localparts

    def check_localpart(
        self,
        localpart: str,
        *,
        allow_numeric: bool = False,
        app_service: AppService | None = None,
    ) -> str:
        """The user ID for `localpart`, or `400 M_INVALID_USERNAME`; `400
        M_EXCLUSIVE` if an application service (other than `app_service`)
        reserves it. A service's own users may start with `_` or be numeric
        (bridges name their bots and ghosts so)."""
        if not localpart:
            raise invalid_username("User ID cannot be empty")
        if localpart != localpart.lower():
            raise invalid_username("User ID may not contain upper-case letters")
        if not is_valid_localpart(localpart):
            raise invalid_username("User ID can only contain characters a-z, 0-9, or '=_-./+'")
        if localpart.startswith("_") and app_service is None:
            raise invalid_username("User ID may not begin with _")
        if not allow_numeric and app_service is None and localpart.isdigit():
            raise invalid_username("Numeric user IDs are reserved for guest users.")
        user_id = self.user_id_for(localpart)
        if len(user_id.encode("utf-8")) > MAX_ID_LENGTH:
            raise invalid_username(f"User ID may not be longer than {MAX_ID_LENGTH} characters")
        self._app_services.check_user_available(user_id, app_service)
        return user_id

    async def check_username(self, localpart: str) -> str:
        """Valid and free: the user ID; otherwise `M_INVALID_USERNAME` / `M_USER_IN_USE`."""
        user_id = self.check_localpart(localpart)
        if await self._accounts.user_exists(user_id):
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        return user_id

    async def check_requested_username(self, localpart: str) -> str:
        """`check_username` for what clients ask before registering.

        With `inhibit_user_in_use_error` a taken name is not revealed here,
        as in Synapse: `/register/available` says it is free and
        registration goes through its auth stages, failing with
        `M_USER_IN_USE` only when it completes.
        """
        if self._config.inhibit_user_in_use_error:
            return self.check_localpart(localpart)
        return await self.check_username(localpart)

    async def generate_localpart(self) -> str:
        """The next free numeric localpart (as Synapse: one more than the largest)."""
        async with self._numeric_lock:
            if self._next_numeric is None:
                largest = 0
                for user_id in await self._accounts.numeric_user_ids():
                    localpart = user_id[1:].split(":", 1)[0]
                    if localpart.isdigit():
                        largest = max(largest, int(localpart))
                self._next_numeric = largest + 1
            value = self._next_numeric
            self._next_numeric += 1
            return str(value)

    # Creating users

    async def register_user(
        self,
        localpart: str | None,
        password: str | None = None,
        *,
        password_hash: str | None = None,
        admin: bool = False,
        user_type: str | None = None,
        displayname: str | None = None,
        is_guest: bool = False,
        registration_token: str | None = None,
        app_service: AppService | None = None,
    ) -> str:
        """Create a user; returns its ID. Nobody is logged in.

        `localpart=None` picks a numeric one. Raises `M_INVALID_USERNAME`,
        `M_EXCLUSIVE` (an application service's namespace, unless it is
        `app_service`'s), `M_USER_IN_USE`, or `M_RESOURCE_LIMIT_EXCEEDED`
        (the tenant's `limits.max_users`). The display name defaults to the
        localpart.
        """
        if user_type is not None and user_type not in USER_TYPES:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user type")
        limited = self._config.limits.max_users is not None
        # Checked before the (slow) hash too, so a full server refuses cheaply.
        await self._check_user_limit()
        if password is not None:
            password_hash = await self._hasher.hash(password)
        # The count and the insert under one lock: concurrent registrations
        # cannot all see room for one more. A tenant runs in one process.
        async with self._user_limit_lock if limited else contextlib.nullcontext():
            await self._check_user_limit()
            user_id = await self._create_user(
                localpart,
                password_hash=password_hash,
                admin=admin,
                user_type=user_type,
                displayname=displayname,
                is_guest=is_guest,
                registration_token=registration_token,
                app_service=app_service,
            )
        logger.info("Registered user %s", user_id)
        if self.after_registration is not None:
            await self.after_registration(user_id, is_guest=is_guest, user_type=user_type)
        return user_id

    async def _check_user_limit(self) -> None:
        max_users = self._config.limits.max_users
        if max_users is not None and await self._accounts.count_users() >= max_users:
            raise ForbiddenError(
                "This homeserver has reached its user limit", errcode="M_RESOURCE_LIMIT_EXCEEDED"
            )

    async def _create_user(
        self,
        localpart: str | None,
        *,
        password_hash: str | None,
        admin: bool,
        user_type: str | None,
        displayname: str | None,
        is_guest: bool,
        registration_token: str | None,
        app_service: AppService | None,
    ) -> str:
        generated = localpart is None
        for _attempt in range(10):
            if localpart is None or generated:
                localpart = await self.generate_localpart()
                user_id = self.check_localpart(localpart, allow_numeric=True)
            else:
                user_id = self.check_localpart(localpart, app_service=app_service)
            try:
                await self._accounts.create_user(
                    user_id,
                    password_hash=password_hash,
                    created_ts=self._clock.time_msec(),
                    admin=admin,
                    is_guest=is_guest,
                    user_type=user_type,
                    displayname=displayname if displayname is not None else localpart,
                    registration_token=registration_token,
                )
            except UserInUseError:
                if generated:
                    continue
                raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.") from None
            except RegistrationTokenUnavailableError:
                raise MatrixError(401, "M_UNAUTHORIZED", "Invalid registration token") from None
            return user_id
        raise MatrixError(500, "M_UNKNOWN", "Could not find a free user ID")

    async def create_login(
        self, user_id: str, device_id: str | None, display_name: str | None
    ) -> dict[str, Any]:
        device_id, token = await self._devices.login_device(user_id, device_id, display_name)
        return {
            "user_id": user_id,
            "home_server": self.server_name,
            "access_token": token,
            "device_id": device_id,
        }

    # Client registration (POST /register)

    def flows(self) -> Flows:
        if self._config.registration_requires_token:
            return [[STAGE_REGISTRATION_TOKEN]]
        return [[STAGE_DUMMY]]

    async def register_guest(
        self, client_ip: str, device_id: str | None, display_name: str | None
    ) -> dict[str, Any]:
        if not self._config.allow_guest_access:
            raise ForbiddenError("Guest access is disabled", errcode="M_GUEST_ACCESS_FORBIDDEN")
        await self._limits.registration.ratelimit((client_ip,))
        user_id = await self.register_user(None, is_guest=True)
        return await self.create_login(user_id, device_id, display_name)

    async def register_client(
        self,
        *,
        auth: object,
        request_key: str,
        client_ip: str,
        username: str | None,
        password: str | None,
        device_id: str | None,
        display_name: str | None,
        inhibit_login: bool,
    ) -> dict[str, Any]:
        """A user's own registration, behind User-Interactive Auth."""
        if not self._config.enable_registration:
            raise ForbiddenError("Registration has been disabled")
        await self._limits.registration.ratelimit((client_ip,), update=False)
        if password is not None:
            validate_password(password, self._config.password_config)
        if username is not None:
            await self.check_requested_username(username)
        async with self._uia.authenticate(
            auth, request_key=request_key, flows=self.flows()
        ) as session:
            if password is None:
                raise MissingParamError("Missing params: password")
            await self._limits.registration.ratelimit((client_ip,))
            token = session.completed.get(STAGE_REGISTRATION_TOKEN)
            user_id = await self.register_user(
                username, password, registration_token=token if isinstance(token, str) else None
            )
        if inhibit_login:
            return {"user_id": user_id, "home_server": self.server_name}
        return await self.create_login(user_id, device_id, display_name)

    async def register_app_service_user(
        self,
        service: AppService,
        username: str,
        *,
        device_id: str | None,
        display_name: str | None,
        inhibit_login: bool,
    ) -> dict[str, Any]:
        """`POST /register` with `type: m.login.application_service`: no UIA,
        no rate limit, open even when registration is off; the user must be
        in the service's namespace (`400 M_EXCLUSIVE` otherwise, as Synapse)."""
        user_id = self.user_id_for(username)
        if not service.owns_user(user_id):
            raise MatrixError(
                400, "M_EXCLUSIVE", "Invalid user localpart for this application service."
            )
        user_id = await self.register_user(username, app_service=service)
        if inhibit_login:
            return {"user_id": user_id, "home_server": self.server_name}
        return await self.create_login(user_id, device_id, display_name)

    async def is_token_valid(self, token: str, client_ip: str) -> bool:
        if not self._config.registration_requires_token:
            raise ForbiddenError("Registration tokens are not enabled")
        await self._limits.token_validity.ratelimit((client_ip,))
        return await self.tokens.is_valid(token, self._clock.time_msec())

    async def shutdown(self) -> None:
        return None
