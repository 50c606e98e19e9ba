"""An event loop whose clock a test (or a benchmark) moves forward by hand.

Time is the real monotonic clock plus an offset, so real I/O keeps working;
`advance()` jumps the offset forward, stopping at each timer that falls due
on the way so looping calls fire at each of their due times.
"""

from __future__ import annotations

import asyncio
import time


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
        # Let callbacks that became runnable (and what they schedule at once) run.
        for _ in range(20):
            await asyncio.sleep(0)


def new_virtual_time_loop() -> VirtualTimeEventLoop:
    return VirtualTimeEventLoop()
