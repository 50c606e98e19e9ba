"""The device list stream: who should re-fetch whose device keys.

A row is written (and the `device_lists` stream moves) whenever a user's
devices or keys change: a device added, renamed or deleted, new device
keys, new cross-signing keys or signatures. Users who share a room with
that user (and the user) are notified so their long-polling /sync wakes.
Remote users' changes (their server's `m.device_list_update` EDUs) are
written the same way, so local clients see them in `device_lists.changed`;
local users' changes are passed to federation (`attach_outbound`), which
sends the EDUs to the servers sharing a room with the user.

Membership changes are not written again: what they mean for device lists
(users who newly share a room are `changed`, users who share none any more
are `left`) is read from the membership events between the two tokens'
`events` positions, which the same sync tokens carry. Those events already
wake the syncs of everyone in the room.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hamlet.core.ids import get_domain_from_id
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


class DeviceListOutbound(Protocol):
    """Tells the servers sharing a room with a local user of its changes."""

    async def devices_updated(self, user_id: str, changes: Sequence[tuple[int, str]]) -> None:
        """(stream id, device id) of each device added, renamed, deleted or re-keyed."""
        ...

    async def signing_keys_updated(self, user_id: str) -> None: ...


class DeviceListHandler(ServiceBase):
    """The `device_lists` stream provider."""

    name = DEVICE_LISTS_STREAM

    def __init__(
        self, server_name: str, store: E2eKeysStore, rooms: RoomsStore, notifier: Notifier
    ) -> None:
        self._server_name = server_name
        self._store = store
        self._rooms = rooms
        self._notifier = notifier
        self._outbound: DeviceListOutbound | None = None
        self.stream_ids = StreamIdGenerator(DEVICE_LISTS_STREAM)
        notifier.register_stream(self.name, self)

    def attach_outbound(self, outbound: DeviceListOutbound) -> None:
        """Federation, built later, hears of local users' changes from here."""
        self._outbound = outbound

    async def load(self) -> None:
        await self.stream_ids.load(self._store.db, "device_lists_stream", "stream_id")

    def current_position(self) -> int:
        return self.stream_ids.current()

    async def devices_changed(self, user_id: str, device_ids: Collection[str] = ()) -> None:
        """`user_id`'s devices or keys changed: tell them, everyone sharing a
        room and (for a local user) the servers of those. `device_ids` are the
        devices added, renamed, deleted or re-keyed; none means the user's
        cross-signing keys (or signatures of them) changed."""
        devices: list[str | None] = list(sorted(set(device_ids))) or [None]
        allocated = [self.stream_ids.next() for _ in devices]
        try:
            await self._store.add_device_list_changes(
                [(sid, user_id, None, d) for sid, d in zip(allocated, devices, strict=True)]
            )
        finally:
            for sid in allocated:
                self.stream_ids.finish(sid)
        audience = await self._rooms.users_sharing_rooms(user_id)
        audience.add(user_id)
        self._notifier.notify(DEVICE_LISTS_STREAM, max(allocated), users=audience)
        if self._outbound is None or get_domain_from_id(user_id) != self._server_name:
            return
        changes = [(sid, d) for sid, d in zip(allocated, devices, strict=True) if d is not None]
        if changes:
            await self._outbound.devices_updated(user_id, changes)
        else:
            await self._outbound.signing_keys_updated(user_id)

    async def keys_changed_for_observer(self, observer: str, user_ids: Iterable[str]) -> None:
        """Changes only `observer` is told of (its signatures of other users' keys)."""
        targets = sorted(set(user_ids))
        if not targets:
            return
        allocated = [self.stream_ids.next() for _ in targets]
        try:
            await self._store.add_device_list_changes(
                [
                    (sid, target, observer, None)
                    for sid, target in zip(allocated, targets, strict=True)
                ]
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
