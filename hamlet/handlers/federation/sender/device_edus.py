"""The EDUs that carry local users' devices to other servers.

`m.device_list_update` (one per changed device, each with the device list
stream id and the user's previous one as `prev_id`, so a server that missed
one sees the gap and fetches the list whole) and `m.signing_key_update` go
to every server with a user sharing a room with ours; `m.direct_to_device`
to the servers of the users messaged. A device change or a to-device
message is queued under a key of its own, so a later one never replaces
it; a signing key update carries the keys as they are, so the newest
replaces a queued one.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, Protocol

import orjson

from hamlet.core.ids import get_domain_from_id
from hamlet.handlers.common.room_access import RoomSharing
from hamlet.handlers.federation.sender.edus import Edu

DEVICE_LIST_UPDATE: Final = "m.device_list_update"
SIGNING_KEY_UPDATE: Final = "m.signing_key_update"
DIRECT_TO_DEVICE: Final = "m.direct_to_device"
#: Messages are split over EDUs of about this many bytes, so a transaction
#: of 100 EDUs stays a size every server accepts.
TO_DEVICE_EDU_BYTES: Final = 64 * 1024


class EduQueue(Protocol):
    async def queue_edus(self, destinations: Collection[str], edus: Sequence[Edu]) -> None: ...


class LocalKeys(Protocol):
    async def device_update(self, user_id: str, device_id: str) -> dict[str, Any]: ...

    async def signing_key_update(self, user_id: str) -> dict[str, Any]: ...


class DevicePositions(Protocol):
    async def last_device_change(self, user_id: str, before: int | None = None) -> int | None: ...


class DeviceEdus:
    """What the device list stream and /sendToDevice hand to federation."""

    def __init__(
        self,
        *,
        server_name: str,
        sender: EduQueue,
        keys: LocalKeys,
        positions: DevicePositions,
        sharing: RoomSharing,
    ) -> None:
        self._server_name = server_name
        self._sender = sender
        self._keys = keys
        self._positions = positions
        self._sharing = sharing

    async def _destinations(self, user_id: str) -> set[str]:
        """The other servers with a user sharing a room with `user_id`."""
        users = await self._sharing.users_sharing_rooms(user_id)
        return {get_domain_from_id(u) for u in users} - {self._server_name}

    async def devices_updated(self, user_id: str, changes: Sequence[tuple[int, str]]) -> None:
        destinations = await self._destinations(user_id)
        if not destinations:
            return
        prev = await self._positions.last_device_change(user_id, before=changes[0][0])
        edus = []
        for stream_id, device_id in changes:
            content = await self._keys.device_update(user_id, device_id)
            content["stream_id"] = stream_id
            content["prev_id"] = [] if prev is None else [prev]
            prev = stream_id
            edus.append(Edu(DEVICE_LIST_UPDATE, f"{user_id}|{stream_id}", content))
        await self._sender.queue_edus(destinations, edus)

    async def signing_keys_updated(self, user_id: str) -> None:
        destinations = await self._destinations(user_id)
        if not destinations:
            return
        content = await self._keys.signing_key_update(user_id)
        # It carries the keys as they are now: a newer one replaces a queued one.
        await self._sender.queue_edus(destinations, [Edu(SIGNING_KEY_UPDATE, user_id, content)])

    async def send_to_device(
        self, sender: str, event_type: str, by_server: Mapping[str, Mapping[str, Any]]
    ) -> None:
        for server, messages in sorted(by_server.items()):
            edus = [
                Edu(
                    DIRECT_TO_DEVICE,
                    message_id,
                    {
                        "sender": sender,
                        "type": event_type,
                        "message_id": message_id,
                        "messages": chunk,
                    },
                )
                for chunk in _chunks(messages)
                for message_id in [secrets.token_urlsafe(16)]
            ]
            await self._sender.queue_edus([server], edus)


def _chunks(messages: Mapping[str, Mapping[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """{user: {device: content}} split into parts of about TO_DEVICE_EDU_BYTES."""
    chunks: list[dict[str, dict[str, Any]]] = [{}]
    size = 0
    for user_id, by_device in messages.items():
        for device_id, content in by_device.items():
            length = len(orjson.dumps(content))
            if size and size + length > TO_DEVICE_EDU_BYTES:
                chunks.append({})
                size = 0
            chunks[-1].setdefault(user_id, {})[device_id] = content
            size += length
    return chunks
