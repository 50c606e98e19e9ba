"""Identical requests in flight share one computation (/sync and sliding sync).

A client (or a bug in one) that sends the same long-poll many times, or
retries it in a storm, costs one computation: later requests await the
first one's. The computation is not a task of any one request: a client
that disconnects only stops awaiting it (`shield`); when the last one has
gone, nobody wants it and it is cancelled. An owner's (a user's) distinct
computations are capped; a request over the cap that would start one gets
the caller's error, a duplicate of a running one still joins it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

R = TypeVar("R")

#: Starts a computation: returns the future of its outcome (an exception
#: raised inside is returned, not raised, so every waiter gets it).
Spawn = Callable[[Callable[[], Awaitable[Any]]], "asyncio.Future[Any]"]


class _Shared:
    """One computation and the requests awaiting it."""

    __slots__ = ("future", "waiters")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.waiters = 0


class SharedComputations(Generic[R]):
    def __init__(
        self,
        spawn: Spawn,
        max_per_owner: int,
        over_cap: Callable[[int], Exception],
    ) -> None:
        self._spawn = spawn
        self._max_per_owner = max_per_owner
        self._over_cap = over_cap
        self._shared: dict[Hashable, _Shared] = {}
        self._computing: dict[str, int] = {}  # owner -> computations in flight

    @property
    def computations(self) -> int:
        """Computations in flight (each serving one or more requests)."""
        return sum(self._computing.values())

    async def join(self, key: Hashable, owner: str, compute: Callable[[], Awaitable[R]]) -> R:
        """The outcome of `compute()` for `key`, started now unless an
        identical one is running."""
        shared = self._shared.get(key)
        if shared is None:
            shared = self._start(key, owner, compute)
        shared.waiters += 1
        try:
            outcome = await asyncio.shield(shared.future)
        finally:
            shared.waiters -= 1
            if not shared.waiters and not shared.future.done():
                if self._shared.get(key) is shared:
                    del self._shared[key]
                shared.future.cancel()
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is None:
            # The computation's own context logged why it failed.
            raise RuntimeError("shared computation failed")
        result: R = outcome
        return result

    def _start(self, key: Hashable, owner: str, compute: Callable[[], Awaitable[R]]) -> _Shared:
        running = self._computing.get(owner, 0)
        if running >= self._max_per_owner:
            raise self._over_cap(running)

        async def run() -> R | BaseException:
            # Errors go to every waiter (as a 400 or, with its traceback in
            # their request's log, a 500).
            try:
                return await compute()
            except Exception as e:
                return e

        shared = _Shared(self._spawn(run))
        self._shared[key] = shared
        self._computing[owner] = running + 1

        def finished(_future: object) -> None:
            if self._shared.get(key) is shared:
                del self._shared[key]
            left = self._computing[owner] - 1
            if left:
                self._computing[owner] = left
            else:
                del self._computing[owner]

        shared.future.add_done_callback(finished)
        return shared
