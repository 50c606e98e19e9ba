"""Per-user and per-room memberships, answered from memory while the notifier says they hold.

Every woken /sync asks which rooms its user is in, and the room summary
asks who is in a room; both change rarely. An entry remembers the events
stream position read before its query (`as_of`); it holds while the
notifier heard of no membership change of that user (or in that room)
past it. Writes the notifier does not hear of (forgetting a room, a purge)
bump `RoomsStore.rewrites`, which every entry also checks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Generic, TypeVar

from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.rooms import Membership, RoomsStore

V = TypeVar("V")

MAX_USERS = 2_000
MAX_ROOMS = 2_000


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    as_of: int
    rewrites: int
    value: V


class MembershipCache(ServiceBase):
    def __init__(self, rooms: RoomsStore, notifier: Notifier) -> None:
        self._store = rooms
        self._notifier = notifier
        self._users: LruCache[str, _Entry[list[Membership]]] = LruCache(MAX_USERS)
        self._rooms: LruCache[str, _Entry[list[Membership]]] = LruCache(MAX_ROOMS)

    @property
    def rewrites(self) -> int:
        """Bumped by each change of memberships that no event announces."""
        return self._store.rewrites

    def _holds(self, entry: _Entry[V] | None, moved: Callable[[int], bool]) -> bool:
        return (
            entry is not None
            and entry.rewrites == self._store.rewrites
            and self._notifier.knows_since("events", entry.as_of)
            and not moved(entry.as_of)
        )

    async def memberships_of_user(self, user_id: str) -> list[Membership]:
        """Every membership of the user, oldest first (`RoomsStore.get_memberships_of_user`)."""
        entry = self._users.get(user_id)
        notifier = self._notifier
        if entry is not None and self._holds(
            entry, lambda as_of: notifier.moved_since("events", as_of, users=(user_id,))
        ):
            return entry.value
        as_of, rewrites = notifier.stream_position("events"), self._store.rewrites
        value = await self._store.get_memberships_of_user(user_id)
        self._users.set(user_id, _Entry(as_of, rewrites, value))
        return value

    async def rooms_for_user(self, user_id: str) -> list[Membership]:
        """The user's joined rooms, oldest first (`RoomsStore.get_rooms_for_user`)."""
        return [m for m in await self.memberships_of_user(user_id) if m.membership == "join"]

    async def members(self, room_id: str) -> list[Membership]:
        """Every membership in the room (`RoomsStore.get_members(room_id, None)`)."""
        return (await self.members_of_rooms([room_id]))[room_id]

    async def members_of_rooms(self, room_ids: Collection[str]) -> dict[str, list[Membership]]:
        """`members` of each room; those not remembered read together
        (`RoomsStore.get_members_of_rooms`), and remembered."""
        out: dict[str, list[Membership]] = {}
        for room_id in room_ids:
            entry = self._rooms.get(room_id)
            if entry is not None and self._room_holds(room_id, entry):
                out[room_id] = entry.value
        missing = [room_id for room_id in room_ids if room_id not in out]
        if not missing:
            return out
        as_of, rewrites = self._notifier.stream_position("events"), self._store.rewrites
        read = await self._store.get_members_of_rooms(missing)
        for room_id, value in read.items():
            self._rooms.set(room_id, _Entry(as_of, rewrites, value))
        out.update(read)
        return out

    def _room_holds(self, room_id: str, entry: _Entry[list[Membership]]) -> bool:
        notifier = self._notifier
        return self._holds(
            entry, lambda as_of: notifier.members_moved_since(as_of, rooms=(room_id,))
        )

    def memory_usage(self) -> int:
        return ENTRY_BYTES * (len(self._users) + len(self._rooms))

    def clear_caches(self) -> None:
        self._users.clear()
        self._rooms.clear()
