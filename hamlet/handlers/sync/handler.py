"""GET /sync: waits for something new, then assembles the response from each stream.

Every stream is read between the client's `since` token and a `now` token
taken once the wait is over; the response's `next_batch` is that `now`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hamlet.core.filters import Filter
from hamlet.handlers.common.errors import InvalidParamError
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.e2ee.device_lists import DeviceListHandler
from hamlet.handlers.e2ee.keys import E2eKeysHandler
from hamlet.handlers.push.rules import PUSH_RULES_TYPE, PushRulesHandler
from hamlet.handlers.sync.rooms import RoomSyncBuilder
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.handlers.user_streams.presence import PresenceHandler
from hamlet.handlers.user_streams.receipts import ReceiptsHandler
from hamlet.handlers.user_streams.to_device import ToDeviceHandler
from hamlet.handlers.user_streams.typing import TypingHandler
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

MAX_TIMEOUT_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class SyncRequest:
    requester: Requester
    since: StreamToken | None
    timeout_ms: int
    full_state: bool
    filter: Filter
    set_presence: str | None


class SyncHandler:
    def __init__(
        self,
        *,
        notifier: Notifier,
        rooms: RoomsStore,
        room_builder: RoomSyncBuilder,
        typing: TypingHandler,
        receipts: ReceiptsHandler,
        account_data: AccountDataHandler,
        to_device: ToDeviceHandler,
        presence: PresenceHandler,
        push_rules: PushRulesHandler,
        e2e_keys: E2eKeysHandler,
        device_lists: DeviceListHandler,
    ) -> None:
        self.notifier = notifier
        self.rooms = rooms
        self.room_builder = room_builder
        self.typing = typing
        self.receipts = receipts
        self.account_data = account_data
        self.to_device = to_device
        self.presence = presence
        self.push_rules = push_rules
        self.e2e_keys = e2e_keys
        self.device_lists = device_lists
        self.active_syncs = 0

    async def sync(self, request: SyncRequest) -> dict[str, Any]:
        self.active_syncs += 1
        try:
            async with self.presence.syncing(request.requester.user_id, request.set_presence):
                return await self._sync(request)
        finally:
            self.active_syncs -= 1

    async def _sync(self, request: SyncRequest) -> dict[str, Any]:
        user_id = request.requester.user_id
        since = request.since
        if since is not None and since.events > self.notifier.current_token().events:
            raise InvalidParamError("The since token is from the future")
        if since is not None and request.timeout_ms > 0 and not request.full_state:
            joined = [m.room_id for m in await self.rooms.get_rooms_for_user(user_id)]
            timeout_s = min(request.timeout_ms, MAX_TIMEOUT_MS) / 1000
            await self.notifier.wait_for_change(user_id, joined, since, timeout_s)
        now = self.notifier.current_token()
        return await self._build(request, now)

    async def _build(self, request: SyncRequest, now: StreamToken) -> dict[str, Any]:
        requester = request.requester
        user_id = requester.user_id
        since = request.since
        full_state = request.full_state or since is None
        account_data = await self.account_data.get_updates(
            user_id, since.account_data if since else 0
        )
        if since is None and all(e["type"] != PUSH_RULES_TYPE for e in account_data.global_events):
            # Never changed, so never stored: an initial sync still carries them.
            account_data.global_events.append(
                {"type": PUSH_RULES_TYPE, "content": await self.push_rules.get_rules(user_id)}
            )
        joined_ids = [m.room_id for m in await self.rooms.get_rooms_for_user(user_id)]
        typing = self.typing.get_updates(joined_ids, since.typing if since else 0)
        receipts = await self.receipts.get_updates(
            user_id, joined_ids, since.receipts if since else 0
        )
        ephemeral: dict[str, list[dict[str, Any]]] = {}
        for room_id in set(typing) | set(receipts):
            events = [e for e in (typing.get(room_id), receipts.get(room_id)) if e]
            ephemeral[room_id] = request.filter.room.ephemeral.filter(events)
        rooms = await self.room_builder.build(
            user_id=user_id,
            device_id=requester.device_id,
            since=since,
            now=now,
            full_state=full_state,
            room_filter=request.filter.room,
            room_account_data=account_data.room_events,
            ephemeral=ephemeral,
        )
        self.room_builder.drop_empty(
            rooms, incremental=since is not None and not request.full_state
        )

        to_device_events: list[dict[str, Any]] = []
        to_device_pos = now.to_device
        if requester.device_id is not None:
            if since is not None and since.to_device:
                await self.to_device.delete_delivered(user_id, requester.device_id, since.to_device)
            to_device_events, to_device_pos = await self.to_device.get_updates(
                user_id, requester.device_id, since.to_device if since else 0
            )
        presence = await self.presence.get_updates(user_id, since.presence if since else 0)
        next_batch = now.copy_and_replace("to_device", max(to_device_pos, 0))
        e2e = await self._e2e(requester, since, now)
        return {
            "next_batch": next_batch.to_string(),
            "rooms": rooms,
            "account_data": {
                "events": request.filter.account_data.filter(account_data.global_events)
            },
            "presence": {"events": request.filter.presence.filter(presence)},
            "to_device": {"events": to_device_events},
            **e2e,
        }

    async def _e2e(
        self, requester: Requester, since: StreamToken | None, now: StreamToken
    ) -> dict[str, Any]:
        """Device list changes since the token (none on an initial sync) and
        the requesting device's one-time and fallback key state."""
        user_id = requester.user_id
        if since is None:
            device_lists: dict[str, list[str]] = {"changed": [], "left": []}
        else:
            changes = await self.device_lists.get_changes(user_id, since, now)
            device_lists = changes.to_json()
        counts: dict[str, int] = {}
        fallback: list[str] = []
        if requester.device_id is not None:
            counts = await self.e2e_keys.one_time_key_counts(user_id, requester.device_id)
            fallback = await self.e2e_keys.unused_fallback_key_types(user_id, requester.device_id)
        return {
            "device_lists": device_lists,
            "device_one_time_keys_count": counts,
            "device_unused_fallback_key_types": fallback,
        }
