"""`rc_federation`: how much one origin server may ask of this tenant at once.

As Synapse's per-host limiter: each origin's requests within the last
`window_size` ms are counted; beyond `sleep_limit` a request first waits
`sleep_delay` ms; at most `concurrent` are processed at a time, the rest
queue in arrival order; when more than `reject_limit` are already waiting
(sleeping or queued) a new one is refused with 429. State is per origin and
per homeserver, so one busy origin never slows another, nor another tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from hamlet.config.model import FederationRateLimitConfig
from hamlet.handlers.common.errors import LimitExceededError
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.runtime.clock import Clock

#: Origins tracked before idle ones are swept (they are authenticated
#: servers, so this only bounds a long-lived tenant's bookkeeping).
SWEEP_ABOVE = 1000


class _Origin:
    __slots__ = ("processing", "queue", "request_times", "sleeping")

    def __init__(self) -> None:
        self.request_times: deque[int] = deque()
        self.sleeping = 0
        self.processing = 0
        # Requests waiting for a processing slot, first come first served.
        self.queue: deque[asyncio.Future[None]] = deque()

    def idle(self) -> bool:
        return not (self.request_times or self.sleeping or self.processing or self.queue)


class FederationRateLimiter(ServiceBase):
    name = "rc_federation"

    def __init__(self, clock: Clock, config: FederationRateLimitConfig) -> None:
        self._clock = clock
        self._config = config
        self._origins: dict[str, _Origin] = {}

    @contextlib.asynccontextmanager
    async def ratelimit(self, origin: str) -> AsyncIterator[None]:
        """Hold one of `origin`'s processing slots for the body (429 when too many wait)."""
        state = self._enter(origin)
        if len(state.request_times) > self._config.sleep_limit:
            state.sleeping += 1
            try:
                await self._clock.sleep(self._config.sleep_delay / 1000)
            finally:
                state.sleeping -= 1
        await self._acquire(state)
        try:
            yield
        finally:
            self._release(state)

    def _enter(self, origin: str) -> _Origin:
        now = self._clock.time_msec()
        if len(self._origins) > SWEEP_ABOVE:
            self._sweep(now)
        state = self._origins.setdefault(origin, _Origin())
        self._forget_old(state, now)
        if state.sleeping + len(state.queue) > self._config.reject_limit:
            raise LimitExceededError(
                self._config.window_size // self._config.sleep_limit,
                limiter_name=self.name,
            )
        state.request_times.append(now)
        return state

    def _forget_old(self, state: _Origin, now: int) -> None:
        while state.request_times and now - state.request_times[0] >= self._config.window_size:
            state.request_times.popleft()

    def _sweep(self, now: int) -> None:
        for origin, state in list(self._origins.items()):
            self._forget_old(state, now)
            if state.idle():
                del self._origins[origin]

    async def _acquire(self, state: _Origin) -> None:
        if state.processing < self._config.concurrent:
            state.processing += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as the request went away.
                self._release(state)
            elif waiter in state.queue:
                state.queue.remove(waiter)
            raise

    def _release(self, state: _Origin) -> None:
        # A freed slot passes straight to the next waiter, so a newcomer
        # cannot take it in between.
        while state.queue:
            waiter = state.queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        state.processing -= 1

    def memory_usage(self) -> int:
        return ENTRY_BYTES * sum(1 + len(s.request_times) for s in self._origins.values())
