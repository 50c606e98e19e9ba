"""Slots for heavy work: at most so many jobs of one owner, and of everyone, at once.

A sync build reads and encodes everything a user has; a user who starts many
distinct ones (or many users of one tenant at once) would have them all
interleave on the event loop, and every request of everyone else waits its
turn behind each of them. With slots the excess waits in its owner's own
queue: the flood costs the flooder their latency. A job takes its owner's
slot before one of the shared ones, so an owner's queued jobs hold nothing
another owner needs. Last it takes one of the tenant's request slots
(`limits.max_concurrent_requests`, request_slots.py), if given: a build is
the work of its request, and counts against the cap only while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hamlet.handlers.common.request_slots import RequestSlots


class _Owner:
    __slots__ = ("semaphore", "users")

    def __init__(self, slots: int) -> None:
        self.semaphore = asyncio.Semaphore(slots)
        self.users = 0


class WorkSlots:
    def __init__(self, per_owner: int, total: int, requests: RequestSlots | None = None) -> None:
        self._per_owner = per_owner
        self._total = asyncio.Semaphore(total)
        self._requests = requests or RequestSlots(None)
        self._owners: dict[str, _Owner] = {}
        self.running = 0

    @contextlib.asynccontextmanager
    async def slot(self, owner: str) -> AsyncIterator[None]:
        """Wait for a slot of `owner`'s and a shared one; held while the block runs."""
        entry = self._owners.get(owner)
        if entry is None:
            entry = self._owners[owner] = _Owner(self._per_owner)
        entry.users += 1
        try:
            async with entry.semaphore, self._total, self._requests.slot():
                self.running += 1
                try:
                    yield
                finally:
                    self.running -= 1
        finally:
            entry.users -= 1
            if not entry.users:
                del self._owners[owner]

    @property
    def waiting_owners(self) -> int:
        """Owners with a job running or waiting (for tests and metrics)."""
        return len(self._owners)
