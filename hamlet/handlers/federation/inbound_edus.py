"""The EDUs a remote server sends us: typing, read receipts, presence,
device list and cross-signing key updates, and to-device messages.

Each lands in the same stream local ones do, so local /sync shows it. A
server only speaks for its own users (anything about another server's user
is dropped), and only about rooms that user is joined to here (presence:
only users sharing a room with one of ours). What does not fit is dropped
and logged, never answered with an error: an EDU has no reply, and the
rest of the transaction still counts. Device list updates go to the
remote device list cache (`federation/devices.py`), to-device messages to
the local inboxes, once per `message_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol

from hamlet.core.ids import UserID, is_room_id
from hamlet.handlers.common.room_access import MembershipChecker, RoomSharing
from hamlet.handlers.user_streams.presence import STATES, PresenceHandler
from hamlet.handlers.user_streams.receipts import READ, ReceiptsHandler
from hamlet.handlers.user_streams.typing import TypingHandler

logger = logging.getLogger(__name__)

#: How long a remote user's typing lasts unless their server renews or
#: ends it (Synapse's FEDERATION_TIMEOUT for typing).
REMOTE_TYPING_TIMEOUT_MS: Final = 60_000
#: Entries walked per EDU: a transaction holds 100 EDUs, each bounded.
MAX_ITEMS_PER_EDU: Final = 100
#: Longest event type or message id of a to-device EDU.
MAX_ID_LENGTH: Final = 255


class EduHandler(Protocol):
    async def __call__(self, origin: str, content: Mapping[str, Any]) -> None: ...


class RemoteDevices(Protocol):
    async def on_device_list_update(self, origin: str, content: Mapping[str, Any]) -> None: ...

    async def on_signing_key_update(self, origin: str, content: Mapping[str, Any]) -> None: ...


class ToDeviceInbox(Protocol):
    async def receive_remote(
        self, origin: str, sender: str, event_type: str, message_id: str, messages: Any
    ) -> None: ...


def _user_of(origin: str, user_id: Any) -> str | None:
    """`user_id` if it is a valid user of `origin`, else None."""
    if not isinstance(user_id, str) or not UserID.is_valid(user_id):
        return None
    if UserID.from_string(user_id).domain != origin:
        logger.info("Ignoring EDU from %s about another server's user %s", origin, user_id)
        return None
    return user_id


class InboundEdus:
    def __init__(
        self,
        *,
        server_name: str,
        membership: MembershipChecker,
        sharing: RoomSharing,
        typing: TypingHandler,
        receipts: ReceiptsHandler,
        presence: PresenceHandler,
        devices: RemoteDevices,
        to_device: ToDeviceInbox,
    ) -> None:
        self._server_name = server_name
        self._membership = membership
        self._sharing = sharing
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._devices = devices
        self._to_device = to_device

    def handlers(self) -> dict[str, EduHandler]:
        """EDU type -> its handler; other types are ignored, as the spec allows."""
        return {
            "m.typing": self.on_typing,
            "m.receipt": self.on_receipt,
            "m.presence": self.on_presence,
            "m.device_list_update": self._devices.on_device_list_update,
            "m.signing_key_update": self._devices.on_signing_key_update,
            "m.direct_to_device": self.on_direct_to_device,
        }

    async def on_typing(self, origin: str, content: Mapping[str, Any]) -> None:
        user_id = _user_of(origin, content.get("user_id"))
        room_id = content.get("room_id")
        typing = content.get("typing")
        if user_id is None or not isinstance(typing, bool):
            return
        if not isinstance(room_id, str) or not is_room_id(room_id):
            return
        if not await self._membership.is_joined(user_id, room_id):
            logger.info("Ignoring typing of %s in %s: not joined here", user_id, room_id)
            return
        if typing:
            self._typing.started_typing(room_id, user_id, REMOTE_TYPING_TIMEOUT_MS)
        else:
            self._typing.stopped_typing(room_id, user_id)

    async def on_receipt(self, origin: str, content: Mapping[str, Any]) -> None:
        walked = 0
        for room_id, by_type in content.items():
            walked += 1
            if walked > MAX_ITEMS_PER_EDU:
                return
            if not isinstance(by_type, Mapping):
                continue
            # Private receipts never leave their server; other types are
            # not ours to understand.
            users = by_type.get(READ)
            if not isinstance(users, Mapping):
                continue
            for raw_user, receipt in users.items():
                walked += 1
                if walked > MAX_ITEMS_PER_EDU:
                    return
                user_id = _user_of(origin, raw_user)
                if user_id is None or not isinstance(receipt, Mapping):
                    continue
                event_ids = receipt.get("event_ids")
                if not isinstance(event_ids, list) or not event_ids:
                    continue
                event_id = event_ids[0]
                data = receipt.get("data")
                thread_id = data.get("thread_id") if isinstance(data, Mapping) else None
                if not isinstance(event_id, str):
                    continue
                if not await self._receipts.received_remote_receipt(
                    user_id, room_id, event_id, thread_id if isinstance(thread_id, str) else None
                ):
                    logger.info("Ignoring receipt of %s in %s", user_id, room_id)

    async def on_presence(self, origin: str, content: Mapping[str, Any]) -> None:
        pushes = content.get("push")
        # With `presence.enabled: false` nothing would be kept: skip the room lookups.
        if not isinstance(pushes, list) or not self._presence.enabled:
            return
        for push in pushes[:MAX_ITEMS_PER_EDU]:
            if not isinstance(push, Mapping):
                continue
            user_id = _user_of(origin, push.get("user_id"))
            presence = push.get("presence")
            if user_id is None or presence not in STATES:
                continue
            sharing = await self._sharing.users_sharing_rooms(user_id)
            if not any(UserID.from_string(u).domain == self._server_name for u in sharing):
                logger.info("Ignoring presence of %s: no room shared with us", user_id)
                continue
            status_msg = push.get("status_msg")
            last_active_ago = push.get("last_active_ago")
            await self._presence.set_remote_presence(
                user_id,
                presence,
                status_msg=status_msg if isinstance(status_msg, str) else None,
                last_active_ago=(
                    last_active_ago
                    if isinstance(last_active_ago, int) and not isinstance(last_active_ago, bool)
                    else None
                ),
                currently_active=push.get("currently_active") is True,
            )

    async def on_direct_to_device(self, origin: str, content: Mapping[str, Any]) -> None:
        sender = _user_of(origin, content.get("sender"))
        event_type = content.get("type")
        message_id = content.get("message_id")
        messages = content.get("messages")
        if sender is None or not isinstance(messages, Mapping):
            return
        if not isinstance(event_type, str) or not 0 < len(event_type) <= MAX_ID_LENGTH:
            return
        if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID_LENGTH:
            return
        await self._to_device.receive_remote(origin, sender, event_type, message_id, messages)
