"""The device list stream: who should re-fetch whose device keys.

A row is written (and the `device_lists` stream moves) whenever a user's
devices or keys change: a device added, renamed or deleted, new device
keys, new cross-signing keys or signatures. Users who share a room with
that user (and the user) are notified so their long-polling /sync wakes.

Membership changes are not written again: what they mean for device lists
(users who newly share a room are `changed`, users who share none any more
are `left`) is read from the membership events between the two tokens'
`events` positions, which the same sync tokens carry. Those events already
wake the syncs of everyone in the room.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.common.streams import StreamToken, SyncScope
from hamlet.storage.stores.e2e_keys import DEVICE_LISTS_STREAM, E2eKeysStore
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stream_ids import StreamIdGenerator

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class DeviceListChanges:
    changed: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, list[str]]:
        return {"changed": sorted(self.changed), "left": sorted(self.left)}


class DeviceListHandler(ServiceBase):
    """The `device_lists` stream provider."""

    name = DEVICE_LISTS_STREAM

    def __init__(self, store: E2eKeysStore, rooms: RoomsStore, notifier: Notifier) -> None:
        self._store = store
        self._rooms = rooms
        self._notifier = notifier
        self.stream_ids = StreamIdGenerator(DEVICE_LISTS_STREAM)
        notifier.register_stream(self.name, self)

    async def load(self) -> None:
        await self.stream_ids.load(self._store.db, "device_lists_stream", "stream_id")

    def current_position(self) -> int:
        return self.stream_ids.current()

    async def devices_changed(self, user_id: str) -> None:
        """`user_id`'s devices or keys changed: tell them and everyone sharing a room."""
        with self.stream_ids.allocate() as stream_id:
            await self._store.add_device_list_changes([(stream_id, user_id, None)])
        audience = await self._rooms.users_sharing_rooms(user_id)
        audience.add(user_id)
        self._notifier.notify(DEVICE_LISTS_STREAM, stream_id, users=audience)

    async def keys_changed_for_observer(self, observer: str, user_ids: Iterable[str]) -> None:
        """Changes only `observer` is told of (its signatures of other users' keys)."""
        targets = sorted(set(user_ids))
        if not targets:
            return
        allocated = [self.stream_ids.next() for _ in targets]
        try:
            await self._store.add_device_list_changes(
                [(sid, target, observer) for sid, target in zip(allocated, targets, strict=True)]
            )
        finally:
            for sid in allocated:
                self.stream_ids.finish(sid)
        self._notifier.notify(DEVICE_LISTS_STREAM, max(allocated), users=[observer])

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> DeviceListChanges:
        """The provider: nothing on an initial sync (a client fetches the keys
        of everyone it meets then), else `get_changes`."""
        if since is None:
            return DeviceListChanges()
        return await self.get_changes(scope.user_id, since, upto)

    async def get_changes(
        self, user_id: str, since: StreamToken, upto: StreamToken
    ) -> DeviceListChanges:
        """What `user_id` should know changed between two tokens."""
        out = DeviceListChanges()
        if upto.device_lists <= since.device_lists and upto.events <= since.events:
            return out
        sharing = await self._rooms.users_sharing_rooms(user_id)
        sharing.add(user_id)
        if upto.device_lists > since.device_lists:
            public, private = await self._store.get_device_list_changes(
                user_id, since.device_lists, upto.device_lists
            )
            out.changed.update(public & sharing)
            out.changed.update(private)
        joined_users: set[str] = set()
        left_candidates: set[str] = set()
        if upto.events > since.events:
            changes = await self._store.get_membership_changes(user_id, since.events, upto.events)
            for room_id, target, membership, prev in changes:
                joined, was_joined = membership == "join", prev == "join"
                if joined == was_joined:
                    continue
                if target == user_id:
                    members = {m.user_id for m in await self._rooms.get_members(room_id)}
                    (joined_users if joined else left_candidates).update(members)
                elif joined:
                    joined_users.add(target)
                else:
                    left_candidates.add(target)
        # Judged by who shares a room now: a user who joined and left again
        # in between is `left`, one who left and came back is `changed`.
        out.changed.update((joined_users & sharing) - {user_id})
        out.left = left_candidates - sharing
        out.changed -= out.left
        return out

    async def shutdown(self) -> None:
        return None
