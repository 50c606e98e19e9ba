"""Deactivating an account, by its owner (`/account/deactivate`) or an admin.

Both do what Synapse does on any deactivation: mark the user deactivated,
log out every device, forget the password, leave every joined room and
reject every pending invite and knock (the user directory never lists a
deactivated user). With `erase`, the display name and avatar go first, so
the leave events carry neither, and the user is marked erased (the admin
API reports `erased: true`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from hamlet.handlers.accounts.account import PASSWORD_FLOWS, AccountHandler
from hamlet.handlers.accounts.uia import UiaHandler
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)


class ErasedUsers(Protocol):
    async def mark_erased(self, user_id: str) -> None:
        """Remember that the user asked to be forgotten."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class DeactivationHandler:
    account: AccountHandler
    accounts: AccountStore
    profiles: ProfilesStore
    erased: ErasedUsers
    rooms: RoomsStore
    pipeline: EventPipeline
    uia: UiaHandler

    async def deactivate_own(
        self, requester: Requester, *, auth: object, request_key: str, erase: bool
    ) -> None:
        """`POST /account/deactivate`, behind a password UIA."""
        async with self.uia.authenticate(
            auth, request_key=request_key, flows=PASSWORD_FLOWS, user_id=requester.user_id
        ):
            await self.deactivate(requester.user_id, erase=erase)

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        await self.account.deactivate_user(user_id)
        await self.accounts.set_password_hash(user_id, None)
        if erase:
            await self.profiles.set_field(user_id, "displayname", None)
            await self.profiles.set_field(user_id, "avatar_url", None)
            await self.erased.mark_erased(user_id)
        pending = await self.rooms.get_rooms_for_user(user_id, ("join", "invite", "knock"))
        await self.pipeline.set_own_membership(user_id, (m.room_id for m in pending), "leave")
        logger.info("Deactivated %s (erase=%s)", user_id, erase)
