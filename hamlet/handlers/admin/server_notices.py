"""Server notices: messages from the server (its "system" user) to one of its users.

Each user gets a private room with the system user, tagged
`m.server_notice` for them, created (and the user invited, or joined with
`auto_join`) the first time a notice is sent. A user who leaves it gets a
new room with the next notice. The system user may post; the recipient's
power level (-10) is below what sending needs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from hamlet.config import HomeServerConfig, ServerNoticesConfig
from hamlet.core.ids import UserID
from hamlet.handlers.common.errors import InvalidParamError, MatrixError, NotFoundError
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.handlers.rooms.sender import Sender
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.runtime.clock import Clock
from hamlet.runtime.linearizer import Linearizer
from hamlet.storage.stores.accounts import AccountStore, UserInUseError
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stores.server_notices import ServerNoticeStore

logger = logging.getLogger(__name__)

SERVER_NOTICE_TAG: Final = "m.server_notice"
RECIPIENT_POWER_LEVEL: Final = -10


class ServerNoticesHandler:
    def __init__(
        self,
        *,
        config: HomeServerConfig,
        clock: Clock,
        store: ServerNoticeStore,
        accounts: AccountStore,
        profiles: ProfilesStore,
        rooms: RoomsStore,
        pipeline: EventPipeline,
        account_data: AccountDataHandler,
    ) -> None:
        self._server_name = config.server_name
        self._config: ServerNoticesConfig | None = config.server_notices
        self._clock = clock
        self._store = store
        self._accounts = accounts
        self._profiles = profiles
        self._rooms = rooms
        self._pipeline = pipeline
        self._account_data = account_data
        self._linearizer = Linearizer()
        self._system_user_ready = False

    @property
    def system_user_id(self) -> str | None:
        if self._config is None:
            return None
        return f"@{self._config.system_mxid_localpart}:{self._server_name}"

    async def send_notice(
        self,
        user_id: str,
        content: Mapping[str, Any],
        *,
        event_type: str = "m.room.message",
        state_key: str | None = None,
        txn: tuple[str, str] | None = None,
    ) -> str:
        """Send a notice; returns its event ID.

        `txn` is `(scope, txn_id)`: a repeat of the same pair returns the
        event sent the first time.
        """
        config = self._config
        system_user = self.system_user_id
        if config is None or system_user is None:
            raise MatrixError(400, "M_UNKNOWN", "Server notices are not enabled on this server")
        if not UserID.is_valid(user_id):
            raise InvalidParamError(f"{user_id!r} is not a valid user ID")
        if UserID.from_string(user_id).domain != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Server notices can only be sent to local users")
        if not await self._accounts.user_exists(user_id) or user_id == system_user:
            raise NotFoundError("User not found")
        async with self._linearizer.queue(user_id):
            await self._ensure_system_user(config, system_user)
            room_id = await self._notice_room(config, system_user, user_id)
            scope = f"server_notices {txn[0]}" if txn else None
            event_id = await self._pipeline.send(
                Sender.server(system_user, txn_scope=scope),
                room_id,
                event_type,
                content,
                state_key=state_key,
                txn_id=txn[1] if txn else None,
            )
        logger.info("Sent server notice %s to %s", event_id, user_id)
        return event_id

    async def _ensure_system_user(self, config: ServerNoticesConfig, system_user: str) -> None:
        if self._system_user_ready:
            return
        if not await self._accounts.user_exists(system_user):
            try:
                await self._accounts.create_user(
                    system_user,
                    password_hash=None,
                    created_ts=self._clock.time_msec(),
                    displayname=config.system_mxid_display_name or config.system_mxid_localpart,
                )
            except UserInUseError:
                pass
            else:
                if config.system_mxid_avatar_url:
                    await self._profiles.set_field(
                        system_user, "avatar_url", config.system_mxid_avatar_url
                    )
                logger.info("Created the server notices user %s", system_user)
        self._system_user_ready = True

    async def _notice_room(
        self, config: ServerNoticesConfig, system_user: str, user_id: str
    ) -> str:
        room_id = await self._store.get_room(user_id)
        if room_id is not None:
            membership = await self._rooms.get_membership(room_id, user_id)
            if membership is not None and membership.membership in ("join", "invite"):
                return room_id
        created = await self._pipeline.create_room(
            Sender.server(system_user),
            {
                "preset": "private_chat",
                "name": config.room_name,
                "invite": [user_id],
                "power_level_content_override": {"users_default": RECIPIENT_POWER_LEVEL},
            },
        )
        room_id = str(created["room_id"])
        await self._account_data.add_tag(user_id, room_id, SERVER_NOTICE_TAG, {})
        if config.auto_join:
            await self._pipeline.update_membership(Sender.server(user_id), room_id, user_id, "join")
        await self._store.set_room(user_id, room_id)
        logger.info("Created server notices room %s for %s", room_id, user_id)
        return room_id
