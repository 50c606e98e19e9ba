"""An event loop whose clock a test (or a benchmark) moves forward by hand.

Time is the real monotonic clock plus an offset, so real I/O keeps working;
`advance()` jumps the offset forward, stopping at each timer that falls due
on the way so looping calls fire at each of their due times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sized

from hamlet.runtime import blocking


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._offset = 0.0

    def time(self) -> float:
        return time.monotonic() + self._offset

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, running everything that falls due."""
        target = self.time() + seconds
        while True:
            await self._settle()
            due = self._next_timer_due()
            now = self.time()
            if due is None or due > target:
                break
            if due > now:
                self._offset += due - now
        if target > self.time():
            self._offset += target - self.time()
        await self._settle()

    def _next_timer_due(self) -> float | None:
        # _scheduled is the base loop's heap of pending TimerHandles.
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        live = [h.when() for h in scheduled if not h.cancelled()]
        return min(live) if live else None

    async def _settle(self) -> None:
        """Let what became runnable run, including work waiting on pool threads.

        Thread work takes real time, so while any is in flight (or callbacks
        are still queued) this yields for a real millisecond at a time.
        """
        for _ in range(2000):
            for _ in range(20):
                await asyncio.sleep(0)
            ready: Sized = self._ready  # type: ignore[attr-defined]
            if not len(ready) and not blocking.in_flight():
                return
            await asyncio.sleep(0.001)


def new_virtual_time_loop() -> VirtualTimeEventLoop:
    return VirtualTimeEventLoop()
