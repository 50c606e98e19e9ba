"""Work that must not stop half-way when whoever awaits it is cancelled.

A cancelled awaiter still waits for the work to end, then raises
`CancelledError`; the work's own result or error is dropped (retrieved,
so asyncio does not log it as lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def await_to_the_end(fut: asyncio.Future[T]) -> T:
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break
        if not fut.cancelled():
            fut.exception()  # retrieved: the caller gets CancelledError instead
        raise


async def run_to_the_end(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` in a task of its own and await it to the end, even if cancelled meanwhile.

    The task gets a copy of the caller's contextvars, so it runs under the
    caller's logging context. For a request that writes: a client that
    hangs up must not stop it between a commit and the in-memory state
    that follows it (a room's head, the notifier).
    """
    return await await_to_the_end(asyncio.get_running_loop().create_task(coro))
