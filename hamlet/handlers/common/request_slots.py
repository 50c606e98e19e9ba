"""The tenant's `limits.max_concurrent_requests`: how much of its work runs at once.

What is counted is work, not waiting: a request holds a slot while its
handler runs, a /sync (or sliding sync) only while it builds its answer,
never while it long-polls. A full-state initial sync with `timeout=0`, the
heaviest request there is, therefore counts like any other.

Beyond the cap requests wait in a short queue; past it they get a 429 with
`retry_after_ms` before their body is read or the database touched, so a
flood costs this tenant its own latency and its neighbours nothing but the
cheap refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from hamlet.handlers.common.errors import LimitExceededError

# Requests that may wait for a slot, per slot, unless
# `limits.max_queued_requests` says how many in all: enough that a flood of
# clients mostly waits its turn (holding a connection, no CPU) rather than
# being refused and retrying at once, bounded as the connections are.
QUEUE_PER_SLOT = 32
# What a refused client is told to wait: long enough that a flood of
# retrying clients costs a few refusals a second each, not thousands.
RETRY_AFTER_MS = 1000


class RequestSlots:
    def __init__(self, cap: int | None, max_queued: int | None = None) -> None:
        self.cap = cap
        self._slots = asyncio.Semaphore(cap) if cap is not None else None
        self._max_queued = (cap or 0) * QUEUE_PER_SLOT if max_queued is None else max_queued
        self.queued = 0
        self.running = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot while the block runs; 429 if the cap and its queue are full."""
        slots = self._slots
        if slots is None:
            yield
            return
        if slots.locked() and self.queued >= self._max_queued:
            raise LimitExceededError(RETRY_AFTER_MS, "This homeserver is busy; try again shortly")
        self.queued += 1
        try:
            await slots.acquire()
        finally:
            self.queued -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            slots.release()
