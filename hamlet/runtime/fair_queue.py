"""Who may start a job on a shared resource now: a per-tenant cap and round-robin turns.

A FIFO in front of a few threads or connections serves tenants in the order
their work arrived, so a tenant that queues 200 jobs makes its neighbour's
one job wait behind all of them. Here each tenant has its own queue, a
tenant runs at most `per_tenant` jobs at once, and a freed place goes to
the next tenant in turn: a burst takes its share and the neighbour waits
for at most one job per busy tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable


class FairQueue:
    """Places on one resource, handed out round-robin between tenants.

    Lives on one event loop (its waiters are that loop's futures).
    """

    def __init__(self, places: int, per_tenant: int) -> None:
        self.places = places
        self.per_tenant = per_tenant
        self.running = 0
        self.running_by_tenant: dict[str, int] = {}
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self.turns: deque[str] = deque()

    def _may_start(self, tenant: str) -> bool:
        return (
            self.running < self.places and self.running_by_tenant.get(tenant, 0) < self.per_tenant
        )

    def _take(self, tenant: str) -> None:
        self.running += 1
        self.running_by_tenant[tenant] = self.running_by_tenant.get(tenant, 0) + 1

    @property
    def queued(self) -> int:
        """Jobs waiting for a place (for tests and metrics)."""
        return sum(len(q) for q in self.waiting.values())

    def try_acquire(self, tenant: str) -> bool:
        """Take a place now if one is free and nobody of `tenant`'s is waiting."""
        if not self.waiting.get(tenant) and self._may_start(tenant):
            self._take(tenant)
            return True
        return False

    async def acquire(self, tenant: str) -> None:
        if self.try_acquire(tenant):
            return
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self.waiting.setdefault(tenant, deque())
        queue.append(gate)
        if tenant not in self.turns:
            self.turns.append(tenant)
        try:
            await gate
        except asyncio.CancelledError:
            if gate.done() and not gate.cancelled():
                # Granted just as we were cancelled: hand the place on.
                self.release(tenant)
            else:
                queue.remove(gate)
                if not queue:
                    del self.waiting[tenant]
            raise

    def release(self, tenant: str) -> None:
        self.running -= 1
        left = self.running_by_tenant[tenant] - 1
        if left:
            self.running_by_tenant[tenant] = left
        else:
            del self.running_by_tenant[tenant]
        self._dispatch()

    @contextlib.asynccontextmanager
    async def place(self, tenant: str) -> AsyncIterator[None]:
        """Wait for a place for `tenant`; held while the block runs."""
        await self.acquire(tenant)
        try:
            yield
        finally:
            self.release(tenant)

    def _dispatch(self) -> None:
        for _ in range(len(self.turns)):
            if self.running >= self.places:
                return
            tenant = self.turns.popleft()
            queue = self.waiting.get(tenant)
            if not queue:
                self.waiting.pop(tenant, None)
                continue
            if self._may_start(tenant):
                self._take(tenant)
                queue.popleft().set_result(None)
            if queue:
                self.turns.append(tenant)
            else:
                del self.waiting[tenant]


class PerLoop:
    """One FairQueue per event loop, made on first use (tests run many loops)."""

    def __init__(self, make: Callable[[], FairQueue]) -> None:
        self._make = make
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FairQueue] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> FairQueue:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = self._make()
        return queue
