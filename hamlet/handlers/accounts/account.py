"""Changing one's password and deactivating one's account (both behind UIA)."""

from __future__ import annotations

import dataclasses
import logging

from hamlet.config import HomeServerConfig
from hamlet.handlers.accounts.auth import AuthHandler
from hamlet.handlers.accounts.devices import DeviceHandler
from hamlet.handlers.accounts.login import LOGIN_TYPE_PASSWORD
from hamlet.handlers.accounts.passwords import PasswordHasher, validate_password
from hamlet.handlers.accounts.uia import Flows, UiaHandler
from hamlet.handlers.common.errors import ForbiddenError
from hamlet.handlers.common.requester import Requester
from hamlet.storage.stores.accounts import AccountStore

logger = logging.getLogger(__name__)

PASSWORD_FLOWS: Flows = [[LOGIN_TYPE_PASSWORD]]


class AccountHandler:
    def __init__(
        self,
        config: HomeServerConfig,
        accounts: AccountStore,
        hasher: PasswordHasher,
        devices: DeviceHandler,
        auth: AuthHandler,
        uia: UiaHandler,
    ) -> None:
        self._config = config
        self._accounts = accounts
        self._hasher = hasher
        self._devices = devices
        self._auth = auth
        self._uia = uia

    @property
    def can_change_password(self) -> bool:
        pc = self._config.password_config
        return pc.enabled and pc.localdb_enabled

    async def change_password(
        self,
        requester: Requester,
        *,
        auth: object,
        request_key: str,
        new_password: str,
        logout_devices: bool,
    ) -> None:
        if not self.can_change_password:
            raise ForbiddenError("Password change disabled")
        validate_password(new_password, self._config.password_config)
        async with self._uia.authenticate(
            auth, request_key=request_key, flows=PASSWORD_FLOWS, user_id=requester.user_id
        ):
            await self.set_password(
                requester.user_id,
                new_password,
                logout_devices=logout_devices,
                keep_device_id=requester.device_id,
            )

    async def set_password(
        self,
        user_id: str,
        new_password: str,
        *,
        logout_devices: bool = True,
        keep_device_id: str | None = None,
    ) -> None:
        """Set the password; with `logout_devices`, every other device is logged out."""
        password_hash = await self._hasher.hash(new_password)
        await self._accounts.set_password_hash(user_id, password_hash)
        if logout_devices:
            await self._devices.delete_all_devices(user_id, except_device_id=keep_device_id)
        logger.info("Password changed for %s", user_id)

    async def deactivate_user(self, user_id: str) -> None:
        """Mark the user deactivated and log out all of their devices."""
        await self._accounts.set_deactivated(user_id, True)
        await self._devices.delete_all_devices(user_id)
        self._auth.invalidate_user(user_id)
        logger.info("Deactivated %s", user_id)

    async def current_admin_flag(self, requester: Requester) -> Requester:
        """The requester with `is_admin` as the database has it now.

        The token cache is trusted for a short while, but `hamlet admin
        make-admin` writes the database from another process; where the flag
        grants power (the admin API) it is read afresh, so a promotion or a
        demotion counts from the next request. A change seen here is pushed
        into the cache for everything else.
        """
        user = await self._accounts.get_user(requester.user_id)
        admin = user is not None and user.admin
        if admin == requester.is_admin:
            return requester
        self._auth.invalidate_user(requester.user_id)
        return dataclasses.replace(requester, is_admin=admin)

    async def set_admin(self, user_id: str, admin: bool) -> None:
        """Grant or revoke server admin; cached tokens see the change at once."""
        await self._accounts.set_admin(user_id, admin)
        self._auth.invalidate_user(user_id)

    async def shutdown(self) -> None:
        return None
