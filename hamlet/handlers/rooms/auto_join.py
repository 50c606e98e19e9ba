"""`auto_join_rooms`: the rooms every newly registered user joins, as in Synapse.

Each entry is a room ID or alias. A local alias that names no room yet is
created (`autocreate_auto_join_rooms`, on by default) as a public room
(Synapse's default preset, `public_chat`) by the user registering, who
becomes its admin. Unlike Synapse, which creates the rooms only for the
very first user of the server, a missing room is created for whoever
registers next, so a server that gains the setting later still gets its
rooms. Guests join too unless `auto_join_rooms_for_guests` is false;
support users never do.

A room that cannot be joined (gone, invite-only, another server's alias)
is logged and skipped: registration has succeeded by then and must not
fail over it.
"""

from __future__ import annotations

import logging

from hamlet.config import HomeServerConfig
from hamlet.core.errors import InvalidIdError
from hamlet.core.ids import RoomAlias
from hamlet.handlers.common.errors import MatrixError, NotFoundError
from hamlet.handlers.rooms.directory import DirectoryHandler
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.handlers.rooms.sender import Sender

logger = logging.getLogger(__name__)

AUTOCREATE_PRESET = "public_chat"
SUPPORT_USER_TYPE = "support"


class AutoJoinHandler:
    def __init__(
        self,
        *,
        config: HomeServerConfig,
        directory: DirectoryHandler,
        pipeline: EventPipeline,
    ) -> None:
        self._config = config
        self._directory = directory
        self._pipeline = pipeline

    async def on_registered(self, user_id: str, *, is_guest: bool, user_type: str | None) -> None:
        config = self._config
        if is_guest and not config.auto_join_rooms_for_guests:
            return
        if user_type == SUPPORT_USER_TYPE:
            return
        for room in config.auto_join_rooms:
            try:
                await self._join(user_id, room)
            except MatrixError as e:
                logger.warning("Could not auto-join %s to %s: %s", user_id, room, e)

    async def _join(self, user_id: str, room: str) -> None:
        if room.startswith("!"):
            await self._join_room(user_id, room)
            return
        try:
            room_id = await self._resolve(room)
        except NotFoundError:
            if not self._may_create(room):
                raise
            created = await self._create(user_id, room)
            if created is not None:
                logger.info("Created auto-join room %s (%s) for %s", room, created, user_id)
                return
            # Someone else registering at the same moment created it first.
            room_id = await self._resolve(room)
        await self._join_room(user_id, room_id)

    async def _join_room(self, user_id: str, room_id: str) -> None:
        # The server joins on the user's behalf: registration already paid
        # its own rate limit, so this is no client action to limit again.
        await self._pipeline.update_membership(Sender.server(user_id), room_id, user_id, "join")

    async def _resolve(self, alias: str) -> str:
        found = await self._directory.get_alias(alias)
        return str(found["room_id"])

    def _may_create(self, alias: str) -> bool:
        if not self._config.autocreate_auto_join_rooms:
            return False
        try:
            return RoomAlias.from_string(alias).domain == self._config.server_name
        except InvalidIdError:
            return False

    async def _create(self, user_id: str, alias: str) -> str | None:
        """The new room's ID (the creator has joined it); None if the alias got taken."""
        body = {
            "preset": AUTOCREATE_PRESET,
            "room_alias_name": RoomAlias.from_string(alias).localpart,
        }
        try:
            created = await self._pipeline.create_room(Sender.server(user_id), body)
        except MatrixError as e:
            if e.errcode == "M_ROOM_IN_USE":
                return None
            raise
        return str(created["room_id"])
