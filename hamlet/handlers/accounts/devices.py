"""Devices: creating them at login, listing, renaming and deleting them.

Deleting a device revokes its access tokens (and drops them from the
token cache) in the same step.

A user has at most `limits.max_devices_per_user` devices: each one costs
every room-mate's /sync and /keys/query. A new device beyond the cap retires
the user's least recently used ones instead of refusing the login, as
Synapse prunes old devices at login: a user who never logs out (scripts,
cleared browsers) keeps being able to log in, and only devices long unused
go.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Collection
from typing import Any, Protocol

from hamlet.handlers.accounts.auth import AuthHandler
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.devices import DeviceRecord, DeviceStore

logger = logging.getLogger(__name__)

_DEVICE_ID_ALPHABET = string.ascii_uppercase
MAX_DEVICE_ID_LENGTH = 255
MAX_DISPLAY_NAME_LENGTH = 100


class DeviceListUpdates(Protocol):
    async def devices_changed(self, user_id: str, device_ids: Collection[str] = ()) -> None:
        """These devices of the user changed: bump the device list stream."""
        ...


def device_json(device: DeviceRecord) -> dict[str, Any]:
    """A device as the client API shows it to its owner.

    The spec's Device: fields the server does not know are left out, not null.
    """
    out: dict[str, Any] = {"device_id": device.device_id}
    for name, value in (
        ("display_name", device.display_name),
        ("last_seen_ip", device.last_seen_ip),
        ("last_seen_ts", device.last_seen_ts),
    ):
        if value is not None:
            out[name] = value
    return out


def generate_device_id() -> str:
    return "".join(secrets.choice(_DEVICE_ID_ALPHABET) for _ in range(10))


class DeviceHandler:
    def __init__(
        self,
        clock: Clock,
        store: DeviceStore,
        auth: AuthHandler,
        device_lists: DeviceListUpdates,
        *,
        max_devices: int = 500,
    ) -> None:
        self._clock = clock
        self._max_devices = max_devices
        self.store = store
        self._auth = auth
        self._device_lists = device_lists

    async def _changed(self, user_id: str, device_ids: Collection[str]) -> None:
        if device_ids:
            await self._device_lists.devices_changed(user_id, device_ids)

    async def _added(self, user_id: str, device_id: str) -> None:
        deleted, revoked = await self.store.delete_least_recently_used(
            user_id, device_id, self._max_devices
        )
        if deleted:
            logger.info(
                "%s has more than %d devices: deleted %d least recently used",
                user_id,
                self._max_devices,
                len(deleted),
            )
            self._auth.invalidate_tokens(revoked)
        await self._changed(user_id, [device_id, *deleted])

    async def login_device(
        self, user_id: str, device_id: str | None, display_name: str | None
    ) -> tuple[str, str]:
        """Create (or reuse) a device and issue it an access token: (device_id, token)."""
        if device_id is None:
            while True:
                device_id = generate_device_id()
                if await self.store.ensure_device(
                    user_id, device_id, display_name, self._clock.time_msec()
                ):
                    break
            await self._added(user_id, device_id)
        elif await self.store.ensure_device(
            user_id, device_id, display_name, self._clock.time_msec()
        ):
            await self._added(user_id, device_id)
        token = await self._auth.issue_token(user_id, device_id)
        return device_id, token

    async def create_device(self, user_id: str, device_id: str) -> None:
        """Create a device without a token (admin API); nothing if it exists."""
        if await self.store.ensure_device(user_id, device_id, None, self._clock.time_msec()):
            await self._added(user_id, device_id)

    async def get_devices(self, user_id: str) -> list[DeviceRecord]:
        return await self.store.get_devices(user_id)

    async def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        return await self.store.get_device(user_id, device_id)

    async def set_display_name(self, user_id: str, device_id: str, display_name: str) -> bool:
        changed = await self.store.set_display_name(user_id, device_id, display_name)
        if changed:
            await self._changed(user_id, [device_id])
        return changed

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        revoked = await self.store.delete_devices(user_id, device_ids)
        self._auth.invalidate_tokens(revoked)
        await self._changed(user_id, device_ids)

    async def delete_all_devices(
        self, user_id: str, *, except_device_id: str | None = None
    ) -> None:
        before = await self.store.get_devices(user_id)
        revoked = await self.store.delete_all_devices(user_id, except_device_id=except_device_id)
        self._auth.invalidate_tokens(revoked)
        if except_device_id is None:
            self._auth.invalidate_user(user_id)
        await self._changed(
            user_id, [d.device_id for d in before if d.device_id != except_device_id]
        )

    async def shutdown(self) -> None:
        return None
