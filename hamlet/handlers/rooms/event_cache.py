"""Events by id, from a per-homeserver cache in front of the events store."""

from __future__ import annotations

from collections.abc import Collection

from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.events import EventsStore, StoredEvent

EVENT_CACHE_SIZE = 5000
# A typical cached event in memory (measured), for the memory estimate.
EVENT_BYTES = 3_000


class EventCache(ServiceBase):
    def __init__(self, store: EventsStore, size: int = EVENT_CACHE_SIZE) -> None:
        self.store = store
        self._cache: LruCache[str, StoredEvent] = LruCache(size)

    async def get(self, event_id: str) -> StoredEvent | None:
        cached = self._cache.get(event_id)
        if cached is not None:
            return cached
        stored = await self.store.get_event(event_id)
        if stored is not None:
            self._cache.set(event_id, stored)
        return stored

    async def get_many(self, event_ids: Collection[str]) -> dict[str, StoredEvent]:
        found = self.cached(event_ids)
        missing = [e for e in event_ids if e not in found]
        if missing:
            fetched = await self.store.get_events(missing)
            for event_id, stored in fetched.items():
                self._cache.set(event_id, stored)
            found.update(fetched)
        return found

    def cached(self, event_ids: Collection[str]) -> dict[str, StoredEvent]:
        """The events of `event_ids` the cache holds, without asking the store."""
        found = {}
        for event_id in event_ids:
            cached = self._cache.get(event_id)
            if cached is not None:
                found[event_id] = cached
        return found

    def add(self, stored: StoredEvent) -> None:
        self._cache.set(stored.event.event_id, stored)

    def invalidate(self, event_id: str) -> None:
        self._cache.pop(event_id)

    def clear_caches(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def memory_usage(self) -> int:
        return len(self._cache) * EVENT_BYTES
