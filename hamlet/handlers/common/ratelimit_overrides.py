"""Per-user overrides of the message rate limit, cached per homeserver.

`messages_per_second == 0` exempts the user entirely (as in Synapse,
whatever the burst count); otherwise both values replace `rc_message`'s for
that user.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from hamlet.handlers.common.service import ServiceBase
from hamlet.storage.stores.ratelimit_overrides import RatelimitOverrideStore

CACHE_SIZE: Final = 10_000
_MISSING: Final = (-1, -1)


class RatelimitOverrides(ServiceBase):
    def __init__(self, store: RatelimitOverrideStore) -> None:
        self._store = store
        # user_id -> override, or _MISSING for "looked up, none set".
        self._cache: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._generation = 0

    async def get(self, user_id: str) -> tuple[int, int] | None:
        """`(messages_per_second, burst_count)`, or None when the user has none."""
        cached = self._cache.get(user_id)
        if cached is None:
            generation = self._generation
            found = await self._store.get(user_id)
            cached = _MISSING if found is None else found
            # A change made while we were reading must not be overwritten.
            if generation == self._generation:
                self._cache[user_id] = cached
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(user_id)
        return None if cached == _MISSING else cached

    async def set(self, user_id: str, messages_per_second: int, burst_count: int) -> None:
        await self._store.set(user_id, messages_per_second, burst_count)
        self._forget(user_id)

    async def delete(self, user_id: str) -> None:
        await self._store.delete(user_id)
        self._forget(user_id)

    def _forget(self, user_id: str) -> None:
        self._generation += 1
        self._cache.pop(user_id, None)

    def clear_caches(self) -> None:
        self._generation += 1
        self._cache.clear()

    async def shutdown(self) -> None:
        self.clear_caches()
