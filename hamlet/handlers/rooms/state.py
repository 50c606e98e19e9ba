"""Room state: the current state of each room and the state at any event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from hamlet.core.events import Event
from hamlet.core.power_levels import StateKey
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.events import EventsStore, StoredEvent
from hamlet.storage.stores.rooms import RoomsStore

StateIds = dict[StateKey, str]

# One cached room's (or state group's) state map in memory, for the memory estimate.
STATE_MAP_BYTES = 8_000


K = TypeVar("K")


async def _read_through(
    cache: LruCache[K, StateIds],
    keys: Collection[K],
    fetch: Callable[[list[K]], Awaitable[dict[K, StateIds]]],
) -> dict[K, StateIds]:
    """The cached state maps of `keys`, the others fetched in one call and cached."""
    out: dict[K, StateIds] = {}
    missing = []
    for key in keys:
        cached = cache.get(key)
        if cached is None:
            missing.append(key)
        else:
            out[key] = cached
    if missing:
        fetched = await fetch(missing)
        for key, ids in fetched.items():
            cache.set(key, ids)
        out.update(fetched)
    return out


class StateHandler(ServiceBase):
    def __init__(self, events: EventsStore, rooms: RoomsStore, cache: EventCache) -> None:
        self.events_store = events
        self.rooms_store = rooms
        self.event_cache = cache
        self._current: LruCache[str, StateIds] = LruCache(500)
        # State groups never change once written, so this cache needs no invalidation.
        self._groups: LruCache[int, StateIds] = LruCache(1000)

    async def get_current_state_ids(self, room_id: str) -> StateIds:
        cached = self._current.get(room_id)
        if cached is None:
            cached = await self.rooms_store.get_current_state_ids(room_id)
            self._current.set(room_id, cached)
        return cached

    async def get_current_state(
        self, room_id: str, keys: set[StateKey] | None = None
    ) -> dict[StateKey, Event]:
        ids = await self.get_current_state_ids(room_id)
        return await self._load(ids, keys)

    async def get_current_states(
        self, room_ids: Collection[str], keys: set[StateKey]
    ) -> dict[str, dict[StateKey, Event]]:
        """`get_current_state` of `keys` in each room; rooms not cached are
        read in one go, and the events of all rooms together."""
        ids = await _read_through(
            self._current, room_ids, self.rooms_store.get_current_state_ids_of_rooms
        )
        wanted = {r: {k: v for k, v in ids[r].items() if k in keys} for r in room_ids}
        found = await self.event_cache.get_many({v for w in wanted.values() for v in w.values()})
        return {
            r: {k: found[v].event for k, v in w.items() if v in found} for r, w in wanted.items()
        }

    async def get_current_state_event(
        self, room_id: str, type: str, state_key: str
    ) -> Event | None:
        ids = await self.get_current_state_ids(room_id)
        event_id = ids.get((type, state_key))
        if event_id is None:
            return None
        stored = await self.event_cache.get(event_id)
        return stored.event if stored is not None else None

    async def get_state_ids_at_group(self, group: int) -> StateIds:
        cached = self._groups.get(group)
        if cached is None:
            cached = await self.events_store.get_state_ids(group)
            self._groups.set(group, cached)
        return cached

    async def get_state_ids_at_groups(self, groups: Collection[int]) -> dict[int, StateIds]:
        """The state of each group; those not cached are read in one go."""
        return await _read_through(self._groups, set(groups), self.events_store.get_state_ids_many)

    async def get_state_at_group(
        self, group: int, keys: set[StateKey] | None = None
    ) -> dict[StateKey, Event]:
        return await self._load(await self.get_state_ids_at_group(group), keys)

    async def get_state_after(
        self, stored: StoredEvent, keys: set[StateKey] | None = None
    ) -> dict[StateKey, Event]:
        """The state after a stored event (none for an outlier, stored without state)."""
        if stored.state_group is None:
            return {}
        return await self.get_state_at_group(stored.state_group, keys)

    async def _load(self, ids: StateIds, keys: set[StateKey] | None) -> dict[StateKey, Event]:
        wanted = ids if keys is None else {k: v for k, v in ids.items() if k in keys}
        found = await self.event_cache.get_many(wanted.values())
        return {k: found[v].event for k, v in wanted.items() if v in found}

    def set_current_state(self, room_id: str, ids: StateIds) -> None:
        """Keep the cached current state in step with what was just persisted."""
        self._current.set(room_id, dict(ids))

    def cache_group(self, group: int, ids: StateIds) -> None:
        self._groups.set(group, ids)

    def cached_rooms(self) -> int:
        return len(self._current) + len(self._groups)

    def memory_usage(self) -> int:
        return self.cached_rooms() * STATE_MAP_BYTES

    def clear_caches(self) -> None:
        self._current.clear()
        self._groups.clear()
