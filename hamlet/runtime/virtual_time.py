"""An event loop whose clock a test (or a benchmark) moves forward by hand.

Time is the real monotonic clock plus an offset, so real I/O keeps working;
`advance()` jumps the offset forward, stopping at each timer that falls due
on the way so looping calls fire at each of their due times. While it
advances, and during `settle()`, time stands still: work a timer started
that runs in real time (pool threads, database round trips; see
`pending_io`) finishes before the next timer fires.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sized

from hamlet.runtime import pending_io

# Real seconds `settle()` waits for work in flight before giving up.
SETTLE_LIMIT_S = 30.0
# How long settling blocks the loop at a time while only threads and
# sockets are busy (they wake nothing the loop could run meanwhile).
_POLL_S = 0.0005
# Rounds of 20 loop turns with callbacks still runnable but no I/O in flight
# after which settling takes them for a task polling the loop, not for work
# that will end.
_SPIN_ROUNDS = 200


class SettleTimeoutError(RuntimeError):
    """Work in flight did not finish within `SETTLE_LIMIT_S` of real time."""


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._offset = 0.0
        # While advancing or settling, time stands still at this value.
        self._frozen_at: float | None = None

    def time(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return time.monotonic() + self._offset

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, running everything that falls due.

        Time jumps from one timer to the next and settles at each, so
        everything a timer started (database writes included) is done
        before the next timer fires, however long it takes in real time.
        """
        with self.time_stands_still():
            assert self._frozen_at is not None
            target = self._frozen_at + seconds
            while True:
                await self._settle()
                due = self._next_timer_due(after=self._frozen_at)
                if due is None or due > target:
                    break
                self._frozen_at = due
            self._frozen_at = target
            await self._settle()

    async def settle(self) -> None:
        """Return once the loop is quiet, without moving time.

        Quiet means: no work registered with `pending_io` (pool threads,
        database round trips) under way, no callback ready to run and no
        timer due now. Time stands still meanwhile, however long that work
        takes in real time, so no timer fires early because of it.
        Tracked work that never finishes raises `SettleTimeoutError` after
        `SETTLE_LIMIT_S` real seconds. A task that polls the loop
        (`sleep(0)` in a loop) is let be after `_SPIN_ROUNDS` rounds.
        """
        with self.time_stands_still():
            await self._settle()

    @contextlib.contextmanager
    def time_stands_still(self) -> Iterator[None]:
        """Hold time where it is; only `advance()` moves it meanwhile.

        For tests whose outcome depends on how much time passes between
        requests (rate limits), which real time would otherwise decide.
        Nothing waiting on a timer makes progress unless advanced.
        """
        if self._frozen_at is not None:  # nested: the outer call owns the clock
            yield
            return
        self._frozen_at = self.time()
        try:
            yield
        finally:
            # Resume from where time stood, not from where real time got to.
            self._offset = self._frozen_at - time.monotonic()
            self._frozen_at = None

    def _next_timer_due(self, after: float = float("-inf")) -> float | None:
        # _scheduled is the base loop's heap of pending TimerHandles.
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        live = [h.when() for h in scheduled if not h.cancelled() and h.when() > after]
        return min(live) if live else None

    def _ready_count(self) -> int:
        ready: Sized = self._ready  # type: ignore[attr-defined]
        return len(ready)

    def _timer_due_now(self) -> bool:
        due = self._next_timer_due()
        return due is not None and due <= self.time()

    async def _settle(self) -> None:
        deadline = time.monotonic() + SETTLE_LIMIT_S
        rounds_without_io = 0
        while True:
            for _ in range(20):
                await asyncio.sleep(0)
            if pending_io.in_flight(self):
                rounds_without_io = 0
                if time.monotonic() > deadline:
                    raise SettleTimeoutError(
                        f"the loop did not settle in {SETTLE_LIMIT_S:.0f} s of real time: "
                        f"{pending_io.in_flight(self)} tracked waits in flight"
                    )
                if not self._ready_count():
                    # Only threads and sockets are left to finish, in real
                    # time; the loop has nothing to do until then, so block
                    # it a moment (no timer can wake it: time stands still).
                    time.sleep(_POLL_S)  # noqa: ASYNC251
                continue
            if not self._ready_count() and not self._timer_due_now():
                return
            rounds_without_io += 1
            if rounds_without_io >= _SPIN_ROUNDS:
                # Still runnable after thousands of turns with no I/O: a task
                # polling with sleep(0). It keeps its turns at every later
                # step; waiting for it to stop would wait forever.
                return


def new_virtual_time_loop() -> VirtualTimeEventLoop:
    return VirtualTimeEventLoop()
